# bench/plot.gp — the chart of bench/run.sh. Variables (gnuplot -e):
#   ajfile     x (0.5 = synchronous path, else -async_jobs), then one column per test:
#              asyncpool throughput / default -multi <cores> ("?" = missing)
#   tlsfile    conc, then hs/s per server, then p99 ms per server (RSA-2048);
#   ntls       the number of servers in it
#   certfile   "certificate -cN", then async-fd/sync, async-cb/sync, async-fd/nginx,
#              async-cb/nginx handshakes/s ratios
#   acorefile  "mode, N" (N jobs in flight), then application-thread and worker CPU per offload (µs)
#   respfile   server, then keep-alive request latency p50, p90, p99 (ms)
#   outfile    PNG to write;  ttl  title;  ncores  cores;  respcert  certificate label
#   havespeed, havetls, havecerts, haveacore, haveresp  1 when the file has a value, else 0
set terminal pngcairo size 1500,1500 font "DejaVu Sans,11" noenhanced
set output outfile
set datafile missing "?"
set datafile separator "\t"
set key autotitle columnheader
set grid lc rgb "#dddddd"

set multiplot title ttl font ",14"

# ---- top: throughput against -async_jobs ----
set origin 0, 0.655
set size 1, 0.325
set title sprintf("openssl speed: asyncpool throughput relative to default provider -multi %d (= 1.0)", ncores)
set logscale x 2
set xrange [0.4:180]
set xtics ("sync" 0.5, "1" 1, "2" 2, "4" 4, "8" 8, "16" 16, "32" 32, "64" 64, "128" 128)
set xlabel "-async_jobs (sync = no -async_jobs, the synchronous path)"
set ylabel sprintf("ratio to default -multi %d", ncores)
set yrange [0:*]
set key outside right top vertical font ",10"
ncols = 11
set arrow 1 from 0.4, 1 to 180, 1 nohead lc rgb "#444444" dt 2 lw 2
set label 1 sprintf("default -multi %d", ncores) at 140, 1.0 right offset 0, 1.0 tc rgb "#444444"
if (havespeed) {
  # asymmetric tests solid, AES-GCM (inline below inline_threshold) dashed
  plot for [i=2:7] ajfile using 1:i with linespoints lw 2 pt i - 1 ps 1.3, \
       for [i=8:ncols-1] ajfile using 1:i with linespoints lw 2 dt 2 pt i - 1 ps 1.3, \
       ajfile using 1:ncols with points pt 7 ps 2.2 lc rgb "black"
} else {
  set label 2 "no openssl speed results (step not run or failed)" at graph 0.3, 0.5
  plot 1 notitle lc rgb "#444444" dt 2
  unset label 2
}
unset arrow 1
unset label 1

# ---- middle left: TLS handshakes/s against concurrency ----
set origin 0, 0.33
set size 0.5, 0.32
set title "TLS 1.3 full handshakes/s (RSA-2048) against client concurrency"
set logscale x 2
set autoscale x
set xrange [*:*]
set xtics auto
set xlabel "client connections in flight (-c)"
set ylabel "handshakes/s"
set yrange [0:*]
set key inside left top font ",10"
if (havetls) {
  plot for [i=2:ntls+1] tlsfile using 1:i with linespoints lw 2 pt i ps 1.3
} else {
  set xrange [1:128]
  set yrange [0:1]
  set label 2 "no TLS results (step not run or failed)" at graph 0.2, 0.5
  plot 2 notitle
  unset label 2
}

# ---- middle right: TLS p99 latency ----
set origin 0.5, 0.33
set size 0.5, 0.32
set title "TLS handshake latency p99 against client concurrency"
set ylabel "p99 latency (ms)"
if (havetls) {
  set logscale y 10
  set yrange [*:*]
  plot for [i=ntls+2:2*ntls+1] tlsfile using 1:i with linespoints lw 2 pt i - ntls ps 1.3
} else {
  set label 2 "no TLS results (step not run or failed)" at graph 0.2, 0.5
  plot 2 notitle
  unset label 2
}

# ---- bottom row: bar charts ----
unset logscale
set autoscale
set xtics auto
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set xtics nomirror rotate by -20 font ",9"
set grid ytics
set xlabel ""

# bottom left: TLS ratios per certificate
set origin 0, 0
set size 0.34, 0.33
set title "TLS handshakes/s ratios per certificate"
set ylabel "ratio"
set yrange [0:*]
set offsets 0, 0, graph 0.3, 0
set key inside left top horizontal maxrows 2 font ",9"
if (havecerts) {
  plot for [i=2:5] certfile using i:xtic(1), 1 notitle lc rgb "#444444" dt 2 lw 2
} else {
  set xrange [0:1]
  unset xtics
  set label 2 "no TLS certificate results" at graph 0.15, 0.5
  set yrange [0:1]
  plot -1 notitle
  unset label 2
  set autoscale x
  set xtics nomirror rotate by -20 font ",9"
}

# bottom middle: async core CPU per offload, goals 2 (app) and 3 (workers) µs
set origin 0.33, 0
set size 0.34, 0.33
set title "async core: CPU per trivial offload (mode, jobs in flight)"
set ylabel "µs per offload"
set key inside left top horizontal maxrows 2 font ",9"
set yrange [0:*]
if (haveacore) {
  plot for [i=2:3] acorefile using i:xtic(1), \
       2 title "goal, app" lc rgb "#1f77b4" dt 2 lw 2, 3 title "goal, workers" lc rgb "#ff7f0e" dt 2 lw 2
} else {
  set xrange [0:1]
  unset xtics
  set label 2 "no async core results" at graph 0.2, 0.5
  set yrange [0:1]
  plot -1 notitle
  unset label 2
  set autoscale x
  set xtics nomirror rotate by -20 font ",9"
}

# bottom right: responsiveness
set origin 0.66, 0
set size 0.34, 0.33
set title sprintf("keep-alive request latency, handshake flood (%s)", respcert)
set ylabel "latency (ms), log scale"
set offsets 0, 0, 0, 0
if (haveresp) {
  set logscale y 10
  set yrange [0.01:*]
  set key inside left top horizontal font ",9"
  plot for [i=2:4] respfile using i:xtic(1)
} else {
  set xrange [0:1]
  set yrange [0:1]
  unset xtics
  set label 2 "no responsiveness results" at graph 0.2, 0.5
  set yrange [0:1]
  plot -1 notitle
  unset label 2
}

unset multiplot

# bench/plot.gp — the chart of bench/run.sh. Variables (gnuplot -e):
#   ajfile   x (0.5 = synchronous path, else -async_jobs), then one column per test:
#            asyncpool throughput / default -multi <cores> ("?" = missing)
#   tlsfile  conc, then hs/s per server, then p99 ms per server
#   outfile  PNG to write;  ttl  title;  ncores  cores
#   havespeed, havetls  1 when the file has at least one value, else 0 (a note instead)
set terminal pngcairo size 1400,1000 font "DejaVu Sans,11" noenhanced
set output outfile
set datafile missing "?"
set datafile separator "\t"
set key autotitle columnheader
set grid lc rgb "#dddddd"

set multiplot title ttl font ",14"

# ---- top: throughput against -async_jobs ----
set origin 0, 0.48
set size 1, 0.50
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

# ---- bottom left: TLS handshakes/s against concurrency ----
set origin 0, 0
set size 0.5, 0.47
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
  plot for [i=2:5] tlsfile using 1:i with linespoints lw 2 pt i ps 1.3
} else {
  set xrange [1:128]
  set yrange [0:1]
  set label 2 "no TLS results (step not run or failed)" at graph 0.2, 0.5
  plot 2 notitle
  unset label 2
}

# ---- bottom right: TLS p99 latency ----
set origin 0.5, 0
set size 0.5, 0.47
set title "TLS handshake latency p99 against client concurrency"
set ylabel "p99 latency (ms)"
if (havetls) {
  set logscale y 10
  set yrange [*:*]
  plot for [i=6:9] tlsfile using 1:i with linespoints lw 2 pt i - 4 ps 1.3
} else {
  set label 2 "no TLS results (step not run or failed)" at graph 0.2, 0.5
  plot 2 notitle
}

unset multiplot

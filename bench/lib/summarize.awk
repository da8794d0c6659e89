# bench/lib/summarize.awk — medians over rounds, and ratios against the anchors.
# In:  group test metric contender round value   (tab-separated, bench/run.sh's data)
# Out: group test metric contender median n min max ratioA ratioB rAmin rAmax rBmin rBmax
#   ratioA: median over rounds of value / anchor's value in the same round, anchor A
#           (speed: defM = default -multi <cores>; tls and resp: nginx)
#   ratioB: the same against anchor B (speed: def1 = default one process; tls and resp: sync)
# A ratio taken round by round compares runs made a few seconds apart (the contenders
# alternate within a round), so it cancels slow drift better than a ratio of medians.
# rXmin/rXmax: the lowest and highest per-round ratio (the noise the median sits in).
# "-" where there is no anchor value.
BEGIN { FS = OFS = "\t"; A["speed"] = "defM"; B["speed"] = "def1"; A["tls"] = "nginx"; B["tls"] = "sync"
        A["resp"] = "nginx"; B["resp"] = "sync" }

function lo(s,   a, n, i, m) { n = split(s, a, " "); if (!n) return "-"; m = a[1] + 0
  for (i = 2; i <= n; i++) if (a[i] + 0 < m) m = a[i] + 0; return m }
function hi(s,   a, n, i, m) { n = split(s, a, " "); if (!n) return "-"; m = a[1] + 0
  for (i = 2; i <= n; i++) if (a[i] + 0 > m) m = a[i] + 0; return m }
function median(s,    a, n, i, j, t) {
  n = split(s, a, " ")
  for (i = 2; i <= n; i++) { t = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
  if (n == 0) return "-"
  return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}

{
  k = $1 FS $2 FS $3 FS $4
  if (!(k in seen)) { seen[k] = 1; order[++nk] = k }
  vals[k] = vals[k] " " $6
  v[k FS $5] = $6
  rounds[$5] = 1
}

END {
  for (i = 1; i <= nk; i++) {
    k = order[i]; split(k, f, FS)
    n = split(vals[k], a, " "); mn = a[1]; mx = a[1]
    for (j = 2; j <= n; j++) { if (a[j] + 0 < mn + 0) mn = a[j]; if (a[j] + 0 > mx + 0) mx = a[j] }
    ra = rb = ""
    for (r in rounds) {
      if ((k FS r) in v) {
        ka = f[1] FS f[2] FS f[3] FS A[f[1]] FS r
        kb = f[1] FS f[2] FS f[3] FS B[f[1]] FS r
        if ((f[1] in A) && (ka in v) && v[ka] + 0 > 0) ra = ra " " v[k FS r] / v[ka]
        if ((f[1] in B) && (kb in v) && v[kb] + 0 > 0) rb = rb " " v[k FS r] / v[kb]
      }
    }
    print k, median(vals[k]), n, mn, mx, (ra == "" ? "-" : median(ra)), (rb == "" ? "-" : median(rb)),
          lo(ra), hi(ra), lo(rb), hi(rb)
  }
}

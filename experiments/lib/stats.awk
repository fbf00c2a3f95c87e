# stats.awk - results.csv -> one line per method x dataset x shots (in order of first appearance), tab-separated:
#   method, dataset, shots, n (rows with status ok), failed (other rows), then mean and sample standard deviation
#   (n - 1 in the denominator; empty when n < 2) of top1, top5 and mean_class over the ok rows that have the
#   value (empty mean: none has it). Zero-shot splits (dataset split1, split2, ...) are pooled as "splits":
#   mean +- std over splits and seeds.
#   awk -F, -f stats.awk results.csv
NR == 1 {
    for (i = 1; i <= NF; i++) col[$i] = i
    if (!("method" in col) || !("dataset" in col) || !("shots" in col) || !("status" in col) || !("top1" in col)) {
        print "stats.awk: " FILENAME ": not a results.csv header: " $0 > "/dev/stderr"; bad = 1; exit 2
    }
    nm = split("top1 top5 mean_class", metric, " ")
    next
}
NF > 1 {
    ds = $(col["dataset"])
    if (ds ~ /^split[0-9]+$/) ds = "splits"
    g = $(col["method"]) SUBSEP ds SUBSEP $(col["shots"])
    if (!(g in seen)) { seen[g] = 1; order[++ng] = g }
    if ($(col["status"]) != "ok") { failed[g]++; next }
    n[g]++
    for (m = 1; m <= nm; m++) {
        v = $(col[metric[m]])
        if (v == "") continue
        k = g SUBSEP m
        cnt[k]++; sum[k] += v; sq[k] += v * v
    }
}
END {
    if (bad) exit 2
    for (i = 1; i <= ng; i++) {
        g = order[i]
        split(g, part, SUBSEP)
        line = part[1] "\t" part[2] "\t" part[3] "\t" (n[g] + 0) "\t" (failed[g] + 0)
        for (m = 1; m <= nm; m++) {
            k = g SUBSEP m
            if (cnt[k] < 1) { line = line "\t\t"; continue }
            mean = sum[k] / cnt[k]
            sd = ""
            if (cnt[k] > 1) {
                var = (sq[k] - cnt[k] * mean * mean) / (cnt[k] - 1)
                sd = sprintf("%.2f", var > 0 ? sqrt(var) : 0)
            }
            line = line "\t" sprintf("%.2f", mean) "\t" sd
        }
        print line
    }
}

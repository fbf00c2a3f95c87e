# parse.awk - a finished run's numbers, as the lines of its result.tsv (dataset, top1, top5, mean_class):
#   awk -v mode=train -v dataset=D -f parse.awk RUN/metrics.jsonl   the final_eval record of xclip-train
#   awk -v mode=eval -v splits="split1 split2 split3" -f parse.awk LOG   xclip-eval's per-list lines, in order,
#                                                                    and the probe's per-attribute accuracies
# Prints nothing when the numbers are not there (the driver then records the run as failed).

# The number after "key": in a metrics.jsonl line ("" when absent).
function jnum(s, k,    i, r) {
    i = index(s, "\"" k "\": ")
    if (!i) return ""
    r = substr(s, i + length(k) + 4)
    if (!match(r, /^-?[0-9][0-9.eE+-]*/)) return ""
    return substr(r, 1, RLENGTH)
}
# The number before "%" that follows `word ` in an xclip-eval line ("" when absent).
function pct(s, word,    i, r) {
    i = index(s, word " ")
    if (!i) return ""
    r = substr(s, i + length(word) + 1)
    if (!match(r, /^[0-9][0-9.]*%/)) return ""
    return substr(r, 1, RLENGTH - 1)
}
BEGIN { n = split(splits, names, " "); k = 0 }
mode == "train" && index($0, "\"type\": \"final_eval\"") {
    t1 = jnum($0, "top1"); t5 = jnum($0, "top5"); mc = jnum($0, "mean_class")
    if (t1 != "") last = dataset "\t" t1 "\t" t5 "\t" mc
}
mode == "eval" && index($0, ", K = ") && index($0, "top-1 ") && index($0, "mean class ") {
    if (k < n) { k++; print names[k] "\t" pct($0, "top-1") "\t" pct($0, "top-5") "\t" pct($0, "mean class") }
}
mode == "eval" && index($0, "zero-shot on ") && index($0, "probe images") {
    probe = 1
}
mode == "eval" && probe == 1 && index($0, "colour ") {
    m = split("colour shape size position", attr, " ")
    for (a = 1; a <= m; a++) { v = pct($0, attr[a]); if (v != "") print "probe_" attr[a] "\t" v "\t-\t-" }
    probe = 2
}
END { if (mode == "train" && last != "") print last }

# curves.awk - training curves: the train loss per epoch of each run, averaged over the runs of a method.
# Input lines (tab-separated): method, metrics.jsonl path. For every "train" record of a run (one per
# output.print_freq iterations and one at each epoch's end) the mean loss of its window ("loss_avg") weighs by
# the window's iterations, so an epoch's value is the mean loss over all its iterations whatever print_freq.
# Output: per method (order of first appearance) a gnuplot data block "# method" + lines "epoch loss", blocks
# separated by two blank lines; and on stderr the methods in order, one per line.
#   awk -F'\t' -f curves.awk LIST > DATA 2> METHODS
function jnum(s, k,    i, r) {
    i = index(s, "\"" k "\": ")
    if (!i) return ""
    r = substr(s, i + length(k) + 4)
    if (!match(r, /^-?[0-9][0-9.eE+-]*/)) return ""
    return substr(r, 1, RLENGTH)
}
{
    method = $1; file = $2
    if (!(method in seen)) { seen[method] = 1; order[++nm] = method }
    prev_ep = -1; prev_it = 0
    delete s; delete w
    while ((getline line < file) > 0) {
        if (!index(line, "\"type\": \"train\"")) continue
        ep = jnum(line, "epoch"); it = jnum(line, "iter"); la = jnum(line, "loss_avg")
        if (ep == "" || it == "" || la == "") continue
        if (ep != prev_ep) { prev_ep = ep; prev_it = 0 }
        len = it + 1 - prev_it; prev_it = it + 1
        if (len <= 0) continue
        s[ep] += la * len; w[ep] += len
    }
    close(file)
    for (ep in w) {
        k = method SUBSEP ep
        tot[k] += s[ep] / w[ep]; cnt[k]++
        if (ep + 1 > maxep[method]) maxep[method] = ep + 1
    }
}
END {
    for (i = 1; i <= nm; i++) {
        m = order[i]
        print m > "/dev/stderr"
        print "# " m
        for (ep = 0; ep < maxep[m]; ep++) { k = m SUBSEP ep; if (cnt[k]) printf "%d %.5f\n", ep + 1, tot[k] / cnt[k] }
        if (maxep[m] == 0) print "NaN NaN"
        print "\n"
    }
}

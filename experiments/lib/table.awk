# table.awk - stats.awk's output -> the Markdown table of table.md (mean +- sample std over seeds, n runs).
#   awk -F'\t' -v title=TITLE -f table.awk STATS
function cell(mean, sd) {
    if (mean == "") return "-"
    return sd == "" ? mean : mean " ± " sd
}
BEGIN {
    if (title != "") print "# " title "\n"
    print "| method | dataset | shots | top-1 (%) | top-5 (%) | mean class (%) | n | failed |"
    print "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
}
NF >= 5 {
    shots = ($3 == "" || $3 == "0") ? "all" : $3
    print "| " $1 " | " $2 " | " shots " | " cell($6, $7) " | " cell($8, $9) " | " cell($10, $11) " | " $4 " | " $5 " |"
}

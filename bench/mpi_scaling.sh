#!/usr/bin/env bash
# The scaling model of data-parallel training (README, "Data-parallel training"): step time and efficiency of
# M machines, one rank each, summing G bytes of gradients per optimiser step with a ring all-reduce over links of
# 10 and 100 Gbit/s, for the accumulation that gives an effective batch of 256 videos.
#
#   bench/mpi_scaling.sh [C_PER_VIDEO_S] [BACKWARD_SHARE] [G_BYTES] [LATENCY_S] [BUCKETS] [BATCH] [HIDDEN]
#
#   C_PER_VIDEO_S   compute seconds per video on one machine (bench_mpi's single-process step / 2: 1.46 s on the
#                   2-core development VM)
#   BACKWARD_SHARE  share of a micro-batch's compute spent in backward, where the buckets overlap (2/3: backward
#                   costs twice the forward's FLOPs)
#   G_BYTES         gradient bytes per step (133 M trained floats at ViT-B/32 with fix_text: 0.533e9)
#   LATENCY_S       per-message latency of one ring step (25 us: TCP on Ethernet)
#   BUCKETS         buckets per step (bench_mpi: 113 at 4 MB)
#   BATCH           videos per micro-batch on each rank (8, the official per-GPU batch)
#   HIDDEN          share of the backward time that communication can actually use (bench_mpi: the share of a
#                   blocking all-reduce the overlap hid over TCP on this machine's loopback: 0.54)
#
# Model, per optimiser step with A micro-batches of B videos per rank:
#   compute    T_c  = A * B * C_PER_VIDEO_S
#   all-reduce T_ar = 2 (M-1)/M * G / bandwidth + 2 (M-1) * BUCKETS * LATENCY_S   (ring: reduce-scatter + all-gather)
#   exposed    T_x  = max(T_ar - HIDDEN * BACKWARD_SHARE * B * C_PER_VIDEO_S, T_ar / BUCKETS)
#                     (only the last micro-batch's backward hides communication; the last bucket never can)
#   step       T    = T_c + T_x,   efficiency = T_c / T,   videos/s = 256 / T
set -euo pipefail
C=${1:-1.46} SHARE=${2:-0.667} G=${3:-0.533e9} LAT=${4:-25e-6} NB=${5:-113} B=${6:-8} H=${7:-0.54}
awk -v C="$C" -v share="$SHARE" -v G="$G" -v lat="$LAT" -v nb="$NB" -v B="$B" -v h="$H" 'BEGIN {
    printf "| machines M | batch x accumulation per rank | compute per step (s) |";
    printf " 10 Gbit/s: all-reduce / exposed (s) | efficiency | 100 Gbit/s: all-reduce / exposed (s) | efficiency |\n";
    printf "| --- | --- | --- | --- | --- | --- | --- |\n";
    split("2 4 8 16 32 64", Ms, " ");
    for (i = 1; i <= 6; i++) {
        M = Ms[i]; b = B; A = 256 / (b * M);
        if (A < 1) { b = 256 / M; A = 1 }          # fewer videos per rank once a step needs fewer than one batch
        Tc = A * b * C;
        line = sprintf("| %d | %d x %d | %.1f |", M, b, A, Tc);
        split("1.25e9 12.5e9", bws, " ");
        for (k = 1; k <= 2; k++) {
            Tar = 2 * (M - 1) / M * G / bws[k] + 2 * (M - 1) * nb * lat;
            Tx = Tar - h * share * b * C; if (Tx < Tar / nb) Tx = Tar / nb;
            line = line sprintf(" %.2f / %.2f | %.0f%% |", Tar, Tx, 100 * Tc / (Tc + Tx));
        }
        print line;
    }
}'

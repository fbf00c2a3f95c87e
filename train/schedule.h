// schedule.h - the learning-rate schedule of docs/model.md §9: linear warm-up from 0, then cosine to lr_min, per
// iteration, as timm's CosineLRScheduler(t_initial = epochs*n_iter, lr_min, warmup_lr_init = 0,
// warmup_t = int(warmup_epochs*n_iter), cycle_limit = 1, t_in_epochs = False) in the official code:
//   t <  warmup:  lr(t) = base * t / warmup
//   t >= warmup:  lr(t) = lr_min + (base - lr_min)/2 * (1 + cos(pi * t / total))   (absolute t, no warm-up shift)
//   t >= total:   lr_min
// base is a group's rate (lr or 10 x lr); lr_min is one value shared by every group.
//
// The official loop sets the rate after each optimiser step from that step's iteration t, so the step that
// ends at iteration t uses the rate computed at the previous step, and the first step uses the initial rate
// (0 with a warm-up: timm sets warmup_lr_init at construction; base without one). LrSchedule keeps that lag:
//
//   LrSchedule s = lr_schedule_make(8e-6, 8e-8, 5 * n_iter, 30 * n_iter);
//   float lr = lr_schedule_initial(&s);             // rate of the first optimiser step
//   ... optimiser step at iteration t uses lr ...;  lr = lr_schedule_at(&s, t);   // for the next one
#pragma once
#include <stdint.h>

typedef struct LrSchedule {
    double base, min;        // base rate (scale 1 group) and the floor
    int64_t warmup, total;   // warm-up and cosine length in iterations
} LrSchedule;

// warmup = int(warmup_epochs * n_iter), total = int(epochs * n_iter) (Python's int truncation).
LrSchedule lr_schedule_make(double base, double min, int64_t warmup, int64_t total);
LrSchedule lr_schedule_from_epochs(double base, double min_ratio, double warmup_epochs, int epochs, int64_t n_iter);
// Rate at iteration t for the scale-1 group; a group with scale s gets lr_schedule_at_scaled(s).
double lr_schedule_at(const LrSchedule *s, int64_t t);
// The rate of a group whose base is scale x base (the floor stays shared): what timm gives that group.
double lr_schedule_at_scaled(const LrSchedule *s, int64_t t, double scale);
double lr_schedule_initial(const LrSchedule *s);

// schedule.c - see schedule.h.
#include "train/schedule.h"

#include <math.h>

LrSchedule lr_schedule_make(double base, double min, int64_t warmup, int64_t total) {
    return (LrSchedule){.base = base, .min = min, .warmup = warmup, .total = total};
}

LrSchedule lr_schedule_from_epochs(double base, double min_ratio, double warmup_epochs, int epochs, int64_t n_iter) {
    return lr_schedule_make(base, base * min_ratio, (int64_t)(warmup_epochs * (double)n_iter), (int64_t)epochs * n_iter);
}

double lr_schedule_at_scaled(const LrSchedule *s, int64_t t, double scale) {
    double base = s->base * scale;
    if (t < s->warmup) return base * (double)t / (double)s->warmup; // warmup_lr_init 0 + t * (base - 0) / warmup
    if (t >= s->total) return s->min;                                // past the single cycle
    return s->min + 0.5 * (base - s->min) * (1.0 + cos(M_PI * (double)t / (double)s->total));
}

double lr_schedule_at(const LrSchedule *s, int64_t t) { return lr_schedule_at_scaled(s, t, 1.0); }

double lr_schedule_initial(const LrSchedule *s) { return s->warmup > 0 ? 0.0 : s->base; }

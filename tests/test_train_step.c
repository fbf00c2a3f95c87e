// test_train_step.c - the built-in default job end to end: a training step allocates nothing from the
// system after the first, the run is bitwise deterministic for a fixed thread count, and training
// reaches a stated accuracy (>= 75% on 512 held-out clips, chance 25%; seed 1024 gives ~99%).
#include "test_util.h"
#include "train/demo.h"

int main(void) {
    DemoConfig cfg = demo_default_config();

    // 1. no allocation in the step loop after the first step
    Demo d;
    demo_init(&d, &cfg);
    demo_train_step(&d, 0);
    uint64_t before = xc_sys_alloc_count();
    size_t peak = d.g.step.peak;
    for (int s = 1; s < 6; s++) demo_train_step(&d, s);
    XC_EXPECT(xc_sys_alloc_count() == before, "steps 2..6 made %llu system allocations",
              (unsigned long long)(xc_sys_alloc_count() - before));
    XC_EXPECT(d.g.step.peak == peak, "step arena peak changed after the first step (%zu -> %zu)", peak, d.g.step.peak);
    printf("  step arena peak %.1f MiB, parameters %.1f KiB\n", peak / 1048576.0, d.ps.total * 4 / 1024.0);
    demo_free(&d);

    // 2. determinism: two runs from the same seed give the same losses bit for bit
    float a[20], b[20];
    demo_init(&d, &cfg);
    for (int s = 0; s < 20; s++) a[s] = demo_train_step(&d, s);
    demo_free(&d);
    demo_init(&d, &cfg);
    for (int s = 0; s < 20; s++) b[s] = demo_train_step(&d, s);
    demo_free(&d);
    XC_EXPECT(memcmp(a, b, sizeof a) == 0, "two runs from one seed differ (loss[19] %.9g vs %.9g)", a[19], b[19]);

    // 3. it learns: the default job beats chance by a wide margin
    demo_init(&d, &cfg);
    double acc0 = demo_evaluate(&d, 512);
    for (int s = 0; s < cfg.steps; s++) demo_train_step(&d, s);
    double acc = demo_evaluate(&d, 512);
    printf("  accuracy %.1f%% -> %.1f%% after %d steps (chance 25%%)\n", 100 * acc0, 100 * acc, cfg.steps);
    XC_EXPECT(acc >= 0.75, "accuracy %.3f after %d steps, want >= 0.75", acc, cfg.steps);
    demo_free(&d);
    return xc_test_summary("test_train_step");
}

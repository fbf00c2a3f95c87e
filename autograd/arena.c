// arena.c - bump allocator with overflow blocks that are folded into the main block at reset.
#include "autograd/tensor.h"

#include <string.h>

#define ARENA_ALIGN 64

struct ArenaBlock {
    ArenaBlock *next;
    size_t size;
    // payload follows, aligned
};

static size_t align_up(size_t n) { return (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1); }

static char *aligned_block(size_t bytes) { return xc_aligned_alloc(ARENA_ALIGN, bytes); }

void arena_init(Arena *a, const char *name, size_t initial_bytes) {
    memset(a, 0, sizeof *a);
    a->name = name;
    a->cap = align_up(initial_bytes);
    a->base = a->cap ? aligned_block(a->cap) : NULL;
}

void *arena_alloc(Arena *a, size_t bytes) {
    size_t n = align_up(bytes ? bytes : 1);
    if (a->used + n <= a->cap) {
        void *p = a->base + a->used;
        a->used += n;
        if (a->used + a->overflow > a->peak) a->peak = a->used + a->overflow;
        return p;
    }
    // Overflow: a block of its own (kept until reset so earlier pointers stay valid).
    size_t hdr = align_up(sizeof(ArenaBlock));
    ArenaBlock *b = (ArenaBlock *)aligned_block(hdr + n);
    b->next = a->extra;
    b->size = n;
    a->extra = b;
    a->overflow += n;
    if (a->used + a->overflow > a->peak) a->peak = a->used + a->overflow;
    return (char *)b + hdr;
}

void *arena_calloc(Arena *a, size_t bytes) {
    void *p = arena_alloc(a, bytes);
    memset(p, 0, bytes);
    return p;
}

void arena_reset(Arena *a) {
    if (a->extra) {
        while (a->extra) {
            ArenaBlock *next = a->extra->next;
            xc_free(a->extra);
            a->extra = next;
        }
        // Grow the main block to the peak (+1/8 headroom) so the same work fits next time.
        xc_free(a->base);
        a->cap = align_up(a->peak + a->peak / 8);
        a->base = aligned_block(a->cap);
    }
    a->used = 0;
    a->overflow = 0;
}

void arena_free(Arena *a) {
    arena_reset(a);
    xc_free(a->base);
    memset(a, 0, sizeof *a);
}

ArenaMark arena_mark(const Arena *a) { return (ArenaMark){a->used, a->overflow, a->extra}; }

void arena_rewind(Arena *a, ArenaMark m) {
    while (a->extra && a->extra != m.extra) { // overflow blocks made after the mark
        ArenaBlock *next = a->extra->next;
        xc_free(a->extra);
        a->extra = next;
    }
    a->used = m.used;
    a->overflow = m.overflow;
}

bool arena_owns(const Arena *a, const void *p) {
    const char *c = p;
    if (c >= a->base && c < a->base + a->used) return true;
    size_t hdr = align_up(sizeof(ArenaBlock));
    for (const ArenaBlock *b = a->extra; b; b = b->next)
        if (c >= (const char *)b + hdr && c < (const char *)b + hdr + b->size) return true;
    return false;
}

// arena.c - bump allocator with overflow blocks that are folded into the main block at reset.
//
// Every block is a page mapping of its own, so memory a rewind releases leaves the process at once (freed
// malloc memory may stay resident and would count twice: once as the old blocks, once as the grown main block).
// Overflow blocks are chunks of at least ARENA_CHUNK bytes, bump-allocated in turn, so a first step that
// overflows makes a few mappings, not one per tensor. When a reset grows the main block, the pages the step
// touched move into the new block (mremap moves page tables, not bytes), so the next step finds them resident
// instead of faulting and zeroing them again.
#include "autograd/tensor.h"

#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define ARENA_ALIGN 64
#define ARENA_CHUNK ((size_t)32 << 20)

struct ArenaBlock {
    ArenaBlock *next;
    size_t size;  // payload bytes
    size_t used;  // payload bytes handed out
    size_t mapped; // bytes of the whole mapping
    // payload follows, aligned
};

static size_t align_up(size_t n) { return (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1); }

static size_t page_up(size_t n) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    return (n + page - 1) / page * page;
}

static size_t header(void) { return align_up(sizeof(ArenaBlock)); }

static char *payload(const ArenaBlock *b) { return (char *)b + header(); }

static void block_unmap(ArenaBlock *b) { xc_unmap_pages(b, b->mapped); }

void arena_init(Arena *a, const char *name, size_t initial_bytes) {
    memset(a, 0, sizeof *a);
    a->name = name;
    a->cap = initial_bytes ? page_up(initial_bytes) : 0;
    a->base = a->cap ? xc_map_pages(a->cap) : NULL;
}

void *arena_alloc(Arena *a, size_t bytes) {
    size_t n = align_up(bytes ? bytes : 1);
    void *p;
    if (a->used + n <= a->cap) {
        p = a->base + a->used;
        a->used += n;
    } else { // overflow: the current chunk, or a new one (kept until reset so earlier pointers stay valid)
        ArenaBlock *b = a->extra;
        if (!b || b->used + n > b->size) {
            size_t want = n > ARENA_CHUNK ? n : ARENA_CHUNK;
            size_t mapped = page_up(header() + want);
            b = xc_map_pages(mapped);
            b->size = mapped - header();
            b->used = 0;
            b->mapped = mapped;
            b->next = a->extra;
            a->extra = b;
        }
        p = payload(b) + b->used;
        b->used += n;
        a->overflow += n;
    }
    if (a->used + a->overflow > a->peak) a->peak = a->used + a->overflow;
    return p;
}

void *arena_calloc(Arena *a, size_t bytes) {
    void *p = arena_alloc(a, bytes);
    memset(p, 0, bytes);
    return p;
}

// Moves the first `keep` bytes of the mapping [p, p + n) to `at` inside the new main block if they fit below
// `end`, and releases the rest. Returns where the next piece goes.
static char *move_into(char *p, size_t keep, size_t n, char *at, const char *end) {
    if (keep < n) xc_unmap_pages(p + keep, n - keep);
    if (keep <= (size_t)(end - at) && mremap(p, keep, keep, MREMAP_MAYMOVE | MREMAP_FIXED, at) != MAP_FAILED)
        return at + keep;
    xc_unmap_pages(p, keep);
    return at;
}

// Grows the main block to `cap` bytes. The old main block and then the filled part of each overflow chunk,
// oldest first (the order the step filled them), move to its front, end to end: the next step, filling the
// new block from the start, touches those pages again and few others (a chunk's unfilled tail, left when the
// next tensor did not fit, is released, not moved: it would sit among them untouched).
static void grow(Arena *a, size_t cap) {
    char *base = xc_map_pages(cap), *at = base;
    if (a->base) at = move_into(a->base, a->cap, a->cap, at, base + cap);
    ArenaBlock *oldest = NULL; // reverse the newest-first list
    while (a->extra) {
        ArenaBlock *next = a->extra->next;
        a->extra->next = oldest;
        oldest = a->extra;
        a->extra = next;
    }
    while (oldest) {
        ArenaBlock *next = oldest->next; // read before the header moves
        at = move_into((char *)oldest, page_up(header() + oldest->used), oldest->mapped, at, base + cap);
        oldest = next;
    }
    a->base = base;
    a->cap = cap;
}

void arena_reset(Arena *a) {
    // The work overflowed (into chunks still here, or rewound already): grow the main block to the peak (+1/8
    // headroom; pages never touched cost no memory) so the same work fits next time. A chunk exists only past
    // the main block, so only when the peak is above it: growing takes every chunk.
    if (a->peak > a->cap) grow(a, page_up(a->peak + a->peak / 8));
    a->used = 0;
    a->overflow = 0;
}

void arena_free(Arena *a) {
    while (a->extra) {
        ArenaBlock *next = a->extra->next;
        block_unmap(a->extra);
        a->extra = next;
    }
    xc_unmap_pages(a->base, a->cap);
    memset(a, 0, sizeof *a);
}

ArenaMark arena_mark(const Arena *a) {
    return (ArenaMark){a->used, a->overflow, a->extra, a->extra ? a->extra->used : 0};
}

void arena_rewind(Arena *a, ArenaMark m) {
    while (a->extra && a->extra != m.extra) { // overflow chunks made after the mark
        ArenaBlock *next = a->extra->next;
        block_unmap(a->extra);
        a->extra = next;
    }
    if (a->extra) a->extra->used = m.extra_used;
    a->used = m.used;
    a->overflow = m.overflow;
}

bool arena_owns(const Arena *a, const void *p) {
    const char *c = p;
    if (c >= a->base && c < a->base + a->used) return true;
    for (const ArenaBlock *b = a->extra; b; b = b->next)
        if (c >= payload(b) && c < payload(b) + b->used) return true;
    return false;
}

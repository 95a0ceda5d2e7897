/*
 * bench.h -- the C loops of `asyncspec bench` (bench.c), which time the
 * installed reference implementation from outside it: each loop calls the
 * installed extension's public functions through a table of their addresses,
 * filled in from Python (__init__.py), the way any other C caller of the
 * library would reach them.  None of this is in the installed extensions.
 *
 * The part between the cffi markers is also the cffi declarations (see
 * impl/cdef.py): build.py reads it from here.
 */

#ifndef ASYNCSPEC_BENCH_H
#define ASYNCSPEC_BENCH_H

#include <stddef.h>
#include <stdint.h>

/* cffi: begin */
struct ast_queue;
struct ast_task;
struct ast_raw_waker;

/* The task layer's functions used by asb_wakes (impl/task/task.h). */
struct asb_tasks {
    struct ast_queue *(*queue_new)(void);
    int (*task_new)(struct ast_queue *q, int schedule, struct ast_task **out);
    int (*task_waker)(struct ast_task *t, struct ast_raw_waker *out);
    struct ast_task *(*queue_pop)(struct ast_queue *q);
    int (*poll_begin)(struct ast_task *t);
    int (*poll_end)(struct ast_task *t, int ready);
    int (*raw_drop)(const struct ast_raw_waker *w);
    int (*task_cancel)(struct ast_task *t);
    int (*release_join)(struct ast_task *t);
    int64_t (*queue_close)(struct ast_queue *q);
    void (*queue_release)(struct ast_queue *q);
};

/* Nanoseconds for n cycles of wake_by_ref + pop + poll (pending), or a
 * negative AST_ERR_* code. */
int64_t asb_wakes(const struct asb_tasks *api, uint64_t n);

struct asf_stack;
struct asf_fiber;

/* The switcher's functions used by asb_pingpong (impl/fiber/fiber.h). */
struct asb_fibers {
    int (*stack_alloc)(struct asf_stack *s, size_t size);
    int (*stack_free)(struct asf_stack *s);
    int (*init)(struct asf_fiber *f, struct asf_stack *s, uintptr_t (*entry)(void *arg, uintptr_t value), void *arg);
    int (*resume)(struct asf_fiber *f, uintptr_t value, uintptr_t *out);
    int (*yield)(uintptr_t value, uintptr_t *in);
    int (*destroy)(struct asf_fiber *f);
};

/* Nanoseconds for n resume/yield round trips (2n switches) between this
 * thread and a fiber, or -errno. */
int64_t asb_pingpong(const struct asb_fibers *api, uint64_t n);
/* cffi: end */

#endif

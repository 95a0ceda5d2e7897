/*
 * bench.c -- the C loops of `asyncspec bench` (see bench.h).
 */

#include "bench.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include "fiber.h"
#include "task.h"

/* The table's entries have the types task.h gives the functions. */
#define ASB_SAME(field, fn) \
    _Static_assert(__builtin_types_compatible_p(__typeof__(((struct asb_tasks *)0)->field), __typeof__(&fn)), #fn)
ASB_SAME(queue_new, ast_queue_new);
ASB_SAME(task_new, ast_task_new);
ASB_SAME(task_waker, ast_task_waker);
ASB_SAME(queue_pop, ast_queue_pop);
ASB_SAME(poll_begin, ast_task_poll_begin);
ASB_SAME(poll_end, ast_task_poll_end);
ASB_SAME(raw_drop, ast_raw_drop);
ASB_SAME(task_cancel, ast_task_cancel);
ASB_SAME(release_join, ast_task_release_join);
ASB_SAME(queue_close, ast_queue_close);
ASB_SAME(queue_release, ast_queue_release);

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Poll the task once if it is queued (pending: it never completes here). */
static int poll_queued(const struct asb_tasks *a, struct ast_queue *q)
{
    struct ast_task *t = a->queue_pop(q);
    if (!t)
        return 0;
    if (a->poll_begin(t) == AST_BEGIN_RUNNING)
        a->poll_end(t, 0);
    return 1;
}

static void release_task(const struct asb_tasks *a, struct ast_queue *q, struct ast_task *t)
{
    while (poll_queued(a, q))
        ;
    a->task_cancel(t);
    a->release_join(t);
    a->queue_close(q);
    a->queue_release(q);
}

int64_t asb_wakes(const struct asb_tasks *a, uint64_t n)
{
    struct ast_queue *q = a->queue_new();
    if (!q)
        return -AST_ERR_NOMEM;
    struct ast_task *t;
    int r = a->task_new(q, 0, &t);
    if (r < 0) {
        a->queue_close(q);
        a->queue_release(q);
        return r;
    }
    struct ast_raw_waker w;
    a->task_waker(t, &w);
    uint64_t polls = 0;
    uint64_t t0 = now_ns();
    for (uint64_t i = 0; i < n; i++) {
        w.vtable->wake_by_ref(w.data);
        struct ast_task *p = a->queue_pop(q);
        if (p && a->poll_begin(p) == AST_BEGIN_RUNNING) {
            a->poll_end(p, 0);
            polls++;
        }
    }
    uint64_t t1 = now_ns();
    a->raw_drop(&w);
    release_task(a, q, t);
    return polls == n ? (int64_t)(t1 - t0) : -AST_ERR_STATE;
}

/* ------------------------------------------------------------------------
 * Fibers
 * ------------------------------------------------------------------------ */

#define ASB_SAME_FIBER(field, fn) \
    _Static_assert(__builtin_types_compatible_p(__typeof__(((struct asb_fibers *)0)->field), __typeof__(&fn)), #fn)
ASB_SAME_FIBER(stack_alloc, asf_stack_alloc);
ASB_SAME_FIBER(stack_free, asf_stack_free);
ASB_SAME_FIBER(init, asf_fiber_init);
ASB_SAME_FIBER(resume, asf_fiber_resume);
ASB_SAME_FIBER(yield, asf_fiber_yield);
ASB_SAME_FIBER(destroy, asf_fiber_destroy);

/* The fiber's side: forever, yield one more than the value it was resumed with. */
static uintptr_t loop_body(void *arg, uintptr_t v)
{
    const struct asb_fibers *a = arg;
    for (;;) {
        uintptr_t in = v;
        a->yield(v + 1, &in);
        v = in;
    }
}

int64_t asb_pingpong(const struct asb_fibers *a, uint64_t n)
{
    struct asf_stack s;
    struct asf_fiber f;
    memset(&s, 0, sizeof s);
    memset(&f, 0, sizeof f);
    int r = a->stack_alloc(&s, 64 * 1024);
    if (r < 0)
        return r;
    r = a->init(&f, &s, loop_body, (void *)a);
    if (r < 0) {
        a->stack_free(&s);
        return r;
    }
    uintptr_t v = 0;
    r = a->resume(&f, v, &v); /* start it (not timed) */
    uint64_t t0 = now_ns();
    for (uint64_t i = 0; i < n && r == ASF_YIELDED; i++)
        r = a->resume(&f, v, &v);
    uint64_t t1 = now_ns();
    a->destroy(&f);
    a->stack_free(&s);
    if (r != ASF_YIELDED)
        return r < 0 ? r : -EIO;
    if (v != n + 1)
        return -EIO; /* each round trip adds one on the fiber's side */
    return (int64_t)(t1 - t0);
}

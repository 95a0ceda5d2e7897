/*
 * internal.h -- what task.c, queue.c and atomic_waker.c share: the task
 * header's and the run queue's layout, the thread's error slot, and the
 * few functions one file calls in another.  Nothing outside this directory
 * includes it (task.h is the API).
 */

#ifndef ASYNCSPEC_TASK_INTERNAL_H
#define ASYNCSPEC_TASK_INTERNAL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>

#include "task.h"

#define ASTI_HIDDEN __attribute__((visibility("hidden")))

/* ------------------------------------------------------------------------
 * The task header
 * ------------------------------------------------------------------------
 * One malloc'd block per task:
 *
 *     +------------------------------+  kept readable after the task is freed
 *     | magic        u32  LIVE / DEAD |  (the quarantine, task.c)
 *     | id           u64  1, 2, ...   |
 *     | calls[4]     u64  clone, wake,|  vtable calls counted per task
 *     |                   wake_by_ref,|
 *     |                   drop        |
 *     | reg_next, quarantine_next     |  registry links (by id)
 *     +------------------------------+  poisoned with 0xDD when freed
 *     | state        u64  (atomic)    |  flags + reference count (task.h)
 *     | holds        u32  (atomic)    |  which handle references are held
 *     | queue        -> run queue     |
 *     | node         intrusive link   |  the task's run-queue entry
 *     +------------------------------+
 */

struct ast_qnode {
    struct ast_qnode *next;
    struct ast_task *task;
};

struct ast_task {
    /* -- kept after the task is freed -- */
    _Atomic uint32_t magic;
    uint32_t reserved_;
    uint64_t id;
    _Atomic uint64_t calls[4];
    struct ast_task *reg_next;        /* registry chain (under reg_lock) */
    struct ast_task *quarantine_next; /* quarantine list (under reg_lock) */
    /* -- poisoned when freed -- */
    _Atomic uint64_t state;
    _Atomic uint32_t holds;
    int linked; /* node is in the queue (under the queue's lock) */
    struct ast_queue *queue;
    struct ast_qnode node;
};
#define AST_POISON_FROM offsetof(struct ast_task, state)

struct ast_queue {
    pthread_mutex_t lock;
    struct ast_qnode *head;
    struct ast_qnode *tail;
    size_t len;
    _Atomic uint64_t refs;  /* the owner's + one per task created on it */
    _Atomic uint64_t tasks; /* tasks created on it and not yet freed */
    int closed;
    int parked;
    int unpark_fd;
    uint64_t spare_nodes; /* pushes that found the task's node linked (queue.c) */
};

/* ------------------------------------------------------------------------
 * The last error, per thread (defined in task.c; ast_last_error reads it)
 * ------------------------------------------------------------------------ */

extern ASTI_HIDDEN _Thread_local struct ast_error asti_error;

static inline void err_clear(void)
{
    asti_error.code = 0;
}

static inline int err_set(int op, int code, const struct ast_task *t, const void *data)
{
    /* Keep the first error of a call: it is the one the caller caused. */
    if (asti_error.code == 0) {
        asti_error.code = code;
        asti_error.op = op;
        asti_error.task = t ? t->id : 0;
        asti_error.data = data;
    }
    return -code;
}

static inline int err_result(void)
{
    return asti_error.code ? -asti_error.code : 0;
}

/* 0 if w is a waker (it has a vtable), else records the error. */
static inline int raw_ok(const struct ast_raw_waker *w, int op)
{
    if (!w || !w->vtable)
        return err_set(op, AST_ERR_INVAL, NULL, w ? w->data : NULL);
    return 0;
}

/* ------------------------------------------------------------------------
 * Calls across the files
 * ------------------------------------------------------------------------ */

/* queue.c: push t on the tail of its queue (the caller has taken the
 * reference the entry holds); drop one reference to a queue. */
ASTI_HIDDEN void asti_queue_push(struct ast_task *t, int op);
ASTI_HIDDEN void asti_queue_unref(struct ast_queue *q);

/* task.c: drop one reference to t, freeing it at the last one. */
ASTI_HIDDEN void asti_ref_release(struct ast_task *t, int op);

#endif

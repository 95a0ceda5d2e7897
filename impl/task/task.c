/*
 * task.c -- task headers: the registry and quarantine, references, notify,
 * the waker vtable and polling (see task.h for the API and the state word,
 * internal.h for the header's layout).
 *
 * Freed tasks: the block is not returned to malloc.  Everything below the
 * kept header is filled with 0xDD, the magic becomes DEAD, and the block goes
 * on a quarantine list until ast_quarantine_flush().  Every vtable entry and
 * every API call checks the magic first: a call on a DEAD task changes
 * nothing and records AST_ERR_FREED with the task id, so a use after free is
 * an error report, not a crash or a silent corruption.  The id and the call
 * counters survive, so the accounting of the call that freed a task can still
 * be read.  After a flush the memory is gone and a stale pointer is undefined
 * behaviour: the Python layer checks its pointers by id (registry below)
 * after a flush.
 *
 * The registry maps ids to blocks (live and quarantined) under one mutex:
 * ast_task_info(id) says whether a task is LIVE, QUARANTINED, RELEASED (its
 * memory flushed) or UNKNOWN (an id never issued), and reads it safely.
 */

#include "internal.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------
 * The last error, per thread
 * ------------------------------------------------------------------------ */

ASTI_HIDDEN _Thread_local struct ast_error asti_error;

const struct ast_error *ast_last_error(void)
{
    return &asti_error;
}

/* ------------------------------------------------------------------------
 * Registry and quarantine
 * ------------------------------------------------------------------------ */

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ast_task **reg_tab;
static size_t reg_cap; /* a power of two */
static size_t reg_n;
static struct ast_task *quarantine_head;
static uint64_t quarantine_len;
static _Atomic uint64_t next_id = 1;
static _Atomic uint64_t live_n;

static size_t reg_slot(uint64_t id, size_t cap)
{
    return (size_t)((id * 0x9E3779B97F4A7C15ull) >> 17) & (cap - 1);
}

/* Under reg_lock. */
static int reg_insert(struct ast_task *t)
{
    if (reg_n + 1 > reg_cap) {
        size_t cap = reg_cap ? reg_cap * 2 : 256;
        struct ast_task **tab = calloc(cap, sizeof *tab);
        if (!tab)
            return -AST_ERR_NOMEM;
        for (size_t i = 0; i < reg_cap; i++) {
            struct ast_task *e = reg_tab[i];
            while (e) {
                struct ast_task *next = e->reg_next;
                size_t s = reg_slot(e->id, cap);
                e->reg_next = tab[s];
                tab[s] = e;
                e = next;
            }
        }
        free(reg_tab);
        reg_tab = tab;
        reg_cap = cap;
    }
    size_t s = reg_slot(t->id, reg_cap);
    t->reg_next = reg_tab[s];
    reg_tab[s] = t;
    reg_n++;
    return 0;
}

/* Under reg_lock. */
static struct ast_task *reg_find(uint64_t id)
{
    if (!reg_cap)
        return NULL;
    for (struct ast_task *e = reg_tab[reg_slot(id, reg_cap)]; e; e = e->reg_next)
        if (e->id == id)
            return e;
    return NULL;
}

/* Under reg_lock. */
static void reg_remove(struct ast_task *t)
{
    struct ast_task **pp = &reg_tab[reg_slot(t->id, reg_cap)];
    while (*pp && *pp != t)
        pp = &(*pp)->reg_next;
    if (*pp) {
        *pp = t->reg_next;
        reg_n--;
    }
}

uint64_t ast_live_tasks(void)
{
    return atomic_load_explicit(&live_n, memory_order_acquire);
}

uint64_t ast_quarantined(void)
{
    pthread_mutex_lock(&reg_lock);
    uint64_t n = quarantine_len;
    pthread_mutex_unlock(&reg_lock);
    return n;
}

/* Return every quarantined block to malloc; the number freed.  Pointers to
 * them are dangling from here on (ast_task_info still answers by id). */
uint64_t ast_quarantine_flush(void)
{
    pthread_mutex_lock(&reg_lock);
    uint64_t n = 0;
    struct ast_task *t = quarantine_head;
    while (t) {
        struct ast_task *next = t->quarantine_next;
        reg_remove(t);
        free(t);
        n++;
        t = next;
    }
    quarantine_head = NULL;
    quarantine_len = 0;
    pthread_mutex_unlock(&reg_lock);
    return n;
}

/* ------------------------------------------------------------------------
 * Tasks: checks, references, notify
 * ------------------------------------------------------------------------ */

/* 0 if t is a live task, else records the error and returns -code. */
static inline int check(const struct ast_task *t, int op)
{
    if (!t)
        return err_set(op, AST_ERR_INVAL, NULL, NULL);
    uint32_t m = atomic_load_explicit((_Atomic uint32_t *)&t->magic, memory_order_acquire);
    if (m == AST_MAGIC_LIVE)
        return 0;
    if (m == AST_MAGIC_DEAD)
        return err_set(op, AST_ERR_FREED, t, t);
    return err_set(op, AST_ERR_NOT_TASK, NULL, t);
}

static void task_free(struct ast_task *t)
{
    struct ast_queue *q = t->queue;
    pthread_mutex_lock(&reg_lock);
    memset((char *)t + AST_POISON_FROM, AST_POISON, sizeof *t - AST_POISON_FROM);
    atomic_store_explicit(&t->magic, AST_MAGIC_DEAD, memory_order_release);
    t->quarantine_next = quarantine_head;
    quarantine_head = t;
    quarantine_len++;
    pthread_mutex_unlock(&reg_lock);
    atomic_fetch_sub_explicit(&live_n, 1, memory_order_acq_rel);
    if (q) {
        atomic_fetch_sub_explicit(&q->tasks, 1, memory_order_acq_rel);
        asti_queue_unref(q);
    }
}

static void ref_acquire(struct ast_task *t)
{
    atomic_fetch_add_explicit(&t->state, AST_REF_ONE, memory_order_relaxed);
}

/* Drop one reference; free the task at the last one. */
static void ref_release(struct ast_task *t, int op)
{
    uint64_t prev = atomic_load_explicit(&t->state, memory_order_relaxed);
    for (;;) {
        if ((prev >> AST_REF_SHIFT) == 0) {
            err_set(op, AST_ERR_REFCOUNT, t, t);
            return;
        }
        if (atomic_compare_exchange_weak_explicit(&t->state, &prev, prev - AST_REF_ONE, memory_order_release,
                                                  memory_order_relaxed))
            break;
    }
    if ((prev >> AST_REF_SHIFT) == 1) {
        atomic_thread_fence(memory_order_acquire);
        task_free(t);
    }
}

static void notify(struct ast_task *t, int op)
{
    uint64_t s = atomic_load_explicit(&t->state, memory_order_acquire);
    for (;;) {
        uint64_t n;
        int push = 0;
        if (s & AST_COMPLETE)
            return;
        if (s & AST_RUNNING) {
            if (s & AST_NOTIFIED)
                return;
            n = s | AST_NOTIFIED;
        } else if (s & AST_NOTIFIED) {
            return;
        } else {
            n = (s | AST_NOTIFIED) + AST_REF_ONE;
            push = 1;
        }
        if (atomic_compare_exchange_weak_explicit(&t->state, &s, n, memory_order_acq_rel, memory_order_acquire)) {
            if (push)
                asti_queue_push(t, op);
            return;
        }
    }
}

void asti_ref_release(struct ast_task *t, int op)
{
    ref_release(t, op);
}

/* ------------------------------------------------------------------------
 * The vtable
 * ------------------------------------------------------------------------ */

static struct ast_raw_waker vt_clone(const void *data);
static void vt_wake(const void *data);
static void vt_wake_by_ref(const void *data);
static void vt_drop(const void *data);

static const struct ast_vtable ast_task_vtable = {vt_clone, vt_wake, vt_wake_by_ref, vt_drop};

static inline void count_call(struct ast_task *t, int which)
{
    atomic_fetch_add_explicit(&t->calls[which], 1, memory_order_relaxed);
}

static struct ast_raw_waker vt_clone(const void *data)
{
    struct ast_task *t = (struct ast_task *)data;
    struct ast_raw_waker w = {data, &ast_task_vtable};
    if (check(t, AST_OP_CLONE) < 0) {
        w.data = NULL; /* no instance was made */
        w.vtable = NULL;
        return w;
    }
    count_call(t, AST_CALL_CLONE);
    ref_acquire(t);
    return w;
}

static void vt_wake(const void *data)
{
    struct ast_task *t = (struct ast_task *)data;
    if (check(t, AST_OP_WAKE) < 0)
        return;
    count_call(t, AST_CALL_WAKE);
    notify(t, AST_OP_WAKE);
    ref_release(t, AST_OP_WAKE);
}

static void vt_wake_by_ref(const void *data)
{
    struct ast_task *t = (struct ast_task *)data;
    if (check(t, AST_OP_WAKE_BY_REF) < 0)
        return;
    count_call(t, AST_CALL_WAKE_BY_REF);
    notify(t, AST_OP_WAKE_BY_REF);
}

static void vt_drop(const void *data)
{
    struct ast_task *t = (struct ast_task *)data;
    if (check(t, AST_OP_DROP) < 0)
        return;
    count_call(t, AST_CALL_DROP);
    ref_release(t, AST_OP_DROP);
}

const struct ast_vtable *ast_vtable(void)
{
    return &ast_task_vtable;
}

/* Calls through a raw waker's vtable, for callers that cannot read the
 * thread's error slot between calls: each clears it, makes the call, and
 * returns 0 or -code of the error the call recorded. */

int ast_raw_clone(const struct ast_raw_waker *w, struct ast_raw_waker *out)
{
    err_clear();
    if (raw_ok(w, AST_OP_CLONE) < 0 || !out)
        return err_set(AST_OP_CLONE, AST_ERR_INVAL, NULL, NULL);
    *out = w->vtable->clone(w->data);
    return err_result();
}

int ast_raw_wake(const struct ast_raw_waker *w)
{
    err_clear();
    if (raw_ok(w, AST_OP_WAKE) < 0)
        return err_result();
    w->vtable->wake(w->data);
    return err_result();
}

int ast_raw_wake_by_ref(const struct ast_raw_waker *w)
{
    err_clear();
    if (raw_ok(w, AST_OP_WAKE_BY_REF) < 0)
        return err_result();
    w->vtable->wake_by_ref(w->data);
    return err_result();
}

int ast_raw_drop(const struct ast_raw_waker *w)
{
    err_clear();
    if (raw_ok(w, AST_OP_DROP) < 0)
        return err_result();
    w->vtable->drop(w->data);
    return err_result();
}

/* std's Waker::will_wake: same data and same vtable.  No call is made. */
int ast_raw_will_wake(const struct ast_raw_waker *a, const struct ast_raw_waker *b)
{
    return a && b && a->data == b->data && a->vtable == b->vtable;
}

/* ------------------------------------------------------------------------
 * Task API
 * ------------------------------------------------------------------------ */

/* A new task on q holding the JoinHandle's and the owned set's references;
 * with schedule, also queued (NOTIFIED, + the queue's reference), as a spawn
 * does. */
int ast_task_new(struct ast_queue *q, int schedule, struct ast_task **out)
{
    err_clear();
    if (!q || !out)
        return err_set(AST_OP_SPAWN, AST_ERR_INVAL, NULL, NULL);
    pthread_mutex_lock(&q->lock);
    int closed = q->closed;
    pthread_mutex_unlock(&q->lock);
    if (closed)
        return err_set(AST_OP_SPAWN, AST_ERR_CLOSED, NULL, q);
    struct ast_task *t = calloc(1, sizeof *t);
    if (!t)
        return err_set(AST_OP_SPAWN, AST_ERR_NOMEM, NULL, NULL);
    t->id = atomic_fetch_add_explicit(&next_id, 1, memory_order_relaxed);
    for (int i = 0; i < 4; i++)
        atomic_init(&t->calls[i], 0);
    atomic_init(&t->state, 2 * AST_REF_ONE);
    atomic_init(&t->holds, AST_HOLD_OWNED | AST_HOLD_JOIN);
    t->queue = q;
    pthread_mutex_lock(&reg_lock);
    int r = reg_insert(t);
    if (r == 0)
        atomic_store_explicit(&t->magic, AST_MAGIC_LIVE, memory_order_release);
    pthread_mutex_unlock(&reg_lock);
    if (r < 0) {
        free(t);
        return err_set(AST_OP_SPAWN, -r, NULL, NULL);
    }
    atomic_fetch_add_explicit(&live_n, 1, memory_order_acq_rel);
    atomic_fetch_add_explicit(&q->refs, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&q->tasks, 1, memory_order_relaxed);
    if (schedule) {
        atomic_fetch_or_explicit(&t->state, AST_NOTIFIED, memory_order_relaxed);
        ref_acquire(t);
        asti_queue_push(t, AST_OP_SPAWN);
    }
    *out = t;
    return err_result();
}

/* A new waker instance for t: +1 reference, no vtable call is counted. */
int ast_task_waker(struct ast_task *t, struct ast_raw_waker *out)
{
    err_clear();
    if (!out)
        return err_set(AST_OP_NEW_WAKER, AST_ERR_INVAL, NULL, NULL);
    if (check(t, AST_OP_NEW_WAKER) < 0)
        return err_result();
    ref_acquire(t);
    out->data = t;
    out->vtable = &ast_task_vtable;
    return 0;
}

/* Start polling a popped task: its reference passed from the queue to the
 * caller.  AST_BEGIN_RUNNING: poll it, then call ast_task_poll_end.
 * AST_BEGIN_COMPLETE: it is complete (not polled), the popped reference is
 * released. */
int ast_task_poll_begin(struct ast_task *t)
{
    err_clear();
    if (check(t, AST_OP_POLL) < 0)
        return err_result();
    uint64_t s = atomic_load_explicit(&t->state, memory_order_acquire);
    for (;;) {
        if (s & AST_COMPLETE) {
            ref_release(t, AST_OP_POLL);
            return err_result() ? err_result() : AST_BEGIN_COMPLETE;
        }
        if (s & AST_RUNNING)
            return err_set(AST_OP_POLL, AST_ERR_STATE, t, t);
        uint64_t n = (s & ~AST_NOTIFIED) | AST_RUNNING;
        if (atomic_compare_exchange_weak_explicit(&t->state, &s, n, memory_order_acq_rel, memory_order_acquire))
            return AST_BEGIN_RUNNING;
    }
}

/* ast_queue_pop + ast_task_poll_begin in one call: AST_NEXT_EMPTY, or
 * begin's result with the task in out->task and its id in out->id (the id
 * is copied because a COMPLETE task may be freed by the release). */
int ast_queue_next(struct ast_queue *q, struct ast_next *out)
{
    err_clear();
    if (!q || !out)
        return err_set(AST_OP_POLL, AST_ERR_INVAL, NULL, NULL);
    struct ast_task *t = ast_queue_pop(q);
    out->task = t;
    if (!t)
        return AST_NEXT_EMPTY;
    out->id = t->id;
    return ast_task_poll_begin(t);
}

/* End a poll begun with ast_task_poll_begin: ready (the task finished) or
 * pending.  Returns AST_END_COMPLETE, AST_END_IDLE or AST_END_REQUEUED. */
int ast_task_poll_end(struct ast_task *t, int ready)
{
    err_clear();
    if (check(t, AST_OP_POLL) < 0)
        return err_result();
    uint64_t s = atomic_load_explicit(&t->state, memory_order_acquire);
    uint64_t n;
    do {
        if (!(s & AST_RUNNING))
            return err_set(AST_OP_POLL, AST_ERR_STATE, t, t);
        n = ready ? ((s & ~AST_RUNNING) | AST_COMPLETE) : (s & ~AST_RUNNING);
    } while (!atomic_compare_exchange_weak_explicit(&t->state, &s, n, memory_order_acq_rel, memory_order_acquire));
    if (ready) {
        uint32_t h = atomic_fetch_and_explicit(&t->holds, ~AST_HOLD_OWNED, memory_order_acq_rel);
        ref_release(t, AST_OP_POLL); /* the popped reference */
        if (h & AST_HOLD_OWNED)
            ref_release(t, AST_OP_POLL); /* the owned set's (maybe the last) */
        return err_result() ? err_result() : AST_END_COMPLETE;
    }
    if (s & AST_NOTIFIED) {
        asti_queue_push(t, AST_OP_POLL); /* the popped reference becomes the queue's */
        return err_result() ? err_result() : AST_END_REQUEUED;
    }
    ref_release(t, AST_OP_POLL);
    return err_result() ? err_result() : AST_END_IDLE;
}

/* Drop the JoinHandle's reference. */
int ast_task_release_join(struct ast_task *t)
{
    err_clear();
    if (check(t, AST_OP_JOIN_DROP) < 0)
        return err_result();
    uint32_t h = atomic_fetch_and_explicit(&t->holds, ~AST_HOLD_JOIN, memory_order_acq_rel);
    if (!(h & AST_HOLD_JOIN))
        return err_set(AST_OP_JOIN_DROP, AST_ERR_STATE, t, t);
    ref_release(t, AST_OP_JOIN_DROP);
    return err_result();
}

/* Cancel at executor shutdown: a task that is not complete becomes
 * COMPLETE|CANCELLED (wakes do nothing from now on) and the owned set's
 * reference is released.  1: cancelled, 0: it was complete already. */
int ast_task_cancel(struct ast_task *t)
{
    err_clear();
    if (check(t, AST_OP_CANCEL) < 0)
        return err_result();
    uint64_t s = atomic_load_explicit(&t->state, memory_order_acquire);
    for (;;) {
        if (s & AST_COMPLETE)
            return 0;
        if (s & AST_RUNNING)
            return err_set(AST_OP_CANCEL, AST_ERR_STATE, t, t);
        if (atomic_compare_exchange_weak_explicit(&t->state, &s, s | AST_COMPLETE | AST_CANCELLED,
                                                  memory_order_acq_rel, memory_order_acquire))
            break;
    }
    uint32_t h = atomic_fetch_and_explicit(&t->holds, ~AST_HOLD_OWNED, memory_order_acq_rel);
    if (h & AST_HOLD_OWNED)
        ref_release(t, AST_OP_CANCEL);
    return err_result() ? err_result() : 1;
}

uint64_t ast_task_id(const struct ast_task *t)
{
    return t->id; /* readable also after the task is freed (until a flush) */
}

static void fill_info(const struct ast_task *t, struct ast_task_info *out)
{
    out->id = t->id;
    for (int i = 0; i < 4; i++)
        out->calls[i] = atomic_load_explicit((_Atomic uint64_t *)&t->calls[i], memory_order_acquire);
    if (atomic_load_explicit((_Atomic uint32_t *)&t->magic, memory_order_acquire) == AST_MAGIC_LIVE) {
        out->status = AST_STATUS_LIVE;
        out->state = atomic_load_explicit((_Atomic uint64_t *)&t->state, memory_order_acquire);
        out->holds = atomic_load_explicit((_Atomic uint32_t *)&t->holds, memory_order_acquire);
    } else {
        out->status = AST_STATUS_QUARANTINED;
    }
}

/* What is known about task `id`, read under the registry lock (safe for any
 * id).  The state and holds only for a LIVE task; the calls also for a
 * QUARANTINED one.  Returns the status. */
int ast_task_info(uint64_t id, struct ast_task_info *out)
{
    memset(out, 0, sizeof *out);
    out->id = id;
    pthread_mutex_lock(&reg_lock);
    struct ast_task *t = reg_find(id);
    if (t)
        fill_info(t, out);
    else if (id >= 1 && id < atomic_load_explicit(&next_id, memory_order_acquire))
        out->status = AST_STATUS_RELEASED;
    else
        out->status = AST_STATUS_UNKNOWN;
    pthread_mutex_unlock(&reg_lock);
    return out->status;
}

/* The block of task `id` if it is live or quarantined, else NULL (under the
 * registry lock: the answer is only as good as no concurrent flush). */
const void *ast_task_ptr(uint64_t id)
{
    pthread_mutex_lock(&reg_lock);
    const void *t = reg_find(id);
    pthread_mutex_unlock(&reg_lock);
    return t;
}

/* Upgrade by id: a new waker for task `id` if it is live (like
 * ast_task_waker, but safe on any id: never resurrects a freed task). */
int ast_task_waker_by_id(uint64_t id, struct ast_raw_waker *out)
{
    err_clear();
    if (!out)
        return err_set(AST_OP_NEW_WAKER, AST_ERR_INVAL, NULL, NULL);
    pthread_mutex_lock(&reg_lock);
    struct ast_task *t = reg_find(id);
    int r = 0;
    if (!t) {
        asti_error.task = id;
        r = (id >= 1 && id < atomic_load_explicit(&next_id, memory_order_acquire)) ? AST_ERR_FREED : AST_ERR_UNKNOWN;
        asti_error.code = r;
        asti_error.op = AST_OP_NEW_WAKER;
        asti_error.data = NULL;
        r = -r;
    } else if (check(t, AST_OP_NEW_WAKER) == 0) {
        uint64_t s = atomic_load_explicit(&t->state, memory_order_relaxed);
        for (;;) {
            if ((s >> AST_REF_SHIFT) == 0) { /* its last release is under way */
                r = err_set(AST_OP_NEW_WAKER, AST_ERR_FREED, t, t);
                break;
            }
            if (atomic_compare_exchange_weak_explicit(&t->state, &s, s + AST_REF_ONE, memory_order_relaxed,
                                                      memory_order_relaxed)) {
                out->data = t;
                out->vtable = &ast_task_vtable;
                break;
            }
        }
    } else {
        r = err_result();
    }
    pthread_mutex_unlock(&reg_lock);
    return r;
}

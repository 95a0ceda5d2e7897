/*
 * task.c -- the C layer of asyncspec's reference executor: task headers, the
 * waker vtable, the run queue, and AtomicWaker.
 *
 * Compiled by cffi in API mode into asyncspec.impl._task and driven from
 * impl/task.py (the step-by-step API) and impl/executor.py (a real
 * single-threaded executor).  The executor runs on one thread, but every
 * waker entry point (clone, wake, wake_by_ref, drop) and the run queue's push
 * may be called from any thread, so the state word and the reference count
 * are C11 atomics, as in tokio's task state.
 *
 * Conventions: functions return 0 (or a count, or a small non-negative
 * result) on success and a negative AST_ERR_* code on failure; the vtable
 * functions return nothing (they are shaped like Rust's RawWakerVTable), so
 * they report a refused call in the calling thread's "last error" slot
 * (ast_last_error), which every public entry point clears first.  Nothing
 * aborts on bad input.
 *
 * The task header
 * ---------------
 * One malloc'd block per task:
 *
 *     +------------------------------+  kept readable after the task is freed
 *     | magic        u32  LIVE / DEAD |  (the checked build's quarantine)
 *     | id           u64  1, 2, ...   |
 *     | calls[4]     u64  clone, wake,|  vtable calls counted per task
 *     |                   wake_by_ref,|
 *     |                   drop        |
 *     | reg_next, quarantine_next     |  registry links (by id)
 *     +------------------------------+  poisoned with 0xDD when freed
 *     | state        u64  (atomic)    |  flags + reference count, below
 *     | holds        u32  (atomic)    |  which handle references are held
 *     | queue        -> run queue     |
 *     | node         intrusive link   |  the task's run-queue entry
 *     +------------------------------+
 *
 * The state word, one atomic u64 (as tokio's):
 *
 *      63                       6 5   4   3    2    1    0
 *     +--------------------------+-------+----+----+----+----+
 *     |  reference count         |  0 0  |CANC|COMP|NOTI|RUN |
 *     +--------------------------+-------+----+----+----+----+
 *
 *   RUNNING   (bit 0) the executor is polling the task
 *   NOTIFIED  (bit 1) a wake is pending: the task is in the run queue, or
 *                     (while RUNNING) will be put back there when the poll ends
 *   COMPLETE  (bit 2) the task finished (or was cancelled): it is never
 *                     polled again, wakes do nothing
 *   CANCELLED (bit 3) with COMPLETE: cancelled at executor shutdown
 *   refcount  (bits 6..63) AST_REF_ONE = 1 << 6 per reference
 *
 * References: each live waker instance holds one; the JoinHandle holds one
 * until it is dropped; the executor's owned-task set holds one until the task
 * completes or is cancelled; the run queue holds one per entry.  (The two
 * handle references are also recorded in `holds`, so dropping one twice is an
 * error, not a second decrement.)  When the count reaches 0 the task is freed.
 *
 * Freed tasks (the checked build, the default): the block is not returned to
 * malloc.  Everything below the kept header is filled with 0xDD, the magic
 * becomes DEAD, and the block goes on a quarantine list until
 * ast_quarantine_flush().  Every vtable entry and every API call checks the
 * magic first: a call on a DEAD task changes nothing and records
 * AST_ERR_FREED with the task id, so a use after free is an error report,
 * not a crash or a silent corruption.  The id and the call counters survive,
 * so the accounting of the call that freed a task can still be read.  After a
 * flush the memory is gone and a stale pointer is undefined behaviour: the
 * Python layer checks its pointers by id (registry below) after a flush.
 *
 * The registry maps ids to blocks (live and quarantined) under one mutex:
 * ast_task_info(id) says whether a task is LIVE, QUARANTINED, RELEASED (its
 * memory flushed) or UNKNOWN (an id never issued), and reads it safely.
 *
 * The vtable (one static struct ast_vtable; data = the task header):
 *   clone        refcount += 1, calls.clone += 1; returns {data, vtable}
 *   wake         calls.wake += 1, notify, then release the instance's
 *                reference (no drop call is counted: wake consumes it)
 *   wake_by_ref  calls.wake_by_ref += 1, notify
 *   drop         calls.drop += 1, refcount -= 1
 * notify(task):
 *   COMPLETE          nothing
 *   RUNNING           set NOTIFIED (the poller re-queues it when the poll ends)
 *   NOTIFIED          nothing: it is queued already (wakes coalesce)
 *   otherwise         set NOTIFIED, refcount += 1 (the queue's), push on the tail
 * so a task is in the run queue at most once at any time.
 *
 * Polling (ast_queue_pop, ast_task_poll_begin, ast_task_poll_end): pop from
 * the head (the queue's reference passes to the poller); begin clears
 * NOTIFIED and sets RUNNING; the caller runs one step with the task's waker
 * borrowed (no clone, no call); end:
 *   ready    set COMPLETE, clear RUNNING, release the owned-set reference and
 *            the popped one
 *   pending  clear RUNNING; if NOTIFIED was set during the poll, push it again
 *            (the popped reference becomes the queue's), else release it
 * A wake during a poll is never lost and causes exactly one more poll.  A
 * popped task that is COMPLETE (only possible in a broken build, or after a
 * cancellation) is not polled: begin returns AST_BEGIN_COMPLETE and releases
 * the popped reference.
 *
 * The run queue is a mutex-protected FIFO of intrusive nodes (the task's
 * `node`); pushes come from any thread.  A task whose node is already linked
 * can only be pushed by a broken build (AST_BROKEN_DOUBLE_ENQUEUE): that push
 * uses a separately allocated node, so the duplicate shows in the queue
 * instead of corrupting the list.  The executor parks with ast_queue_park
 * before blocking in the reactor; a push onto a parked queue writes to the
 * queue's unpark eventfd (the reactor's Waker), so a wake from another thread
 * ends the reactor wait.  The queue itself is reference-counted (its owner,
 * plus one per task created on it) so a stray waker that outlives the
 * executor never touches freed memory.
 *
 * AtomicWaker (futures-rs's algorithm, state bits WAITING = 0,
 * REGISTERING = 1, WAKING = 2), also split into its atomic steps so a
 * single-threaded driver can interleave a register and a wake step by step:
 *   register_begin  CAS WAITING -> REGISTERING; on failure, if WAKING was
 *                   seen, wake_by_ref the new waker (a wake is in progress
 *                   on the old one); returns the state seen (0: go on)
 *   register_store  keep the stored waker if it will_wake the new one, else
 *                   clone the new one, store it, drop the old one
 *   register_end    CAS REGISTERING -> WAITING; if that fails a wake came in
 *                   (WAKING is set): take the waker, swap to WAITING, wake it
 *   take_begin      fetch_or WAKING; returns the previous state
 *   take_end        if that was WAITING: take the stored waker, clear WAKING
 * register = begin [+ store + end], take = take_begin + take_end,
 * wake = take + wake of the taken waker: the whole operations are these steps.
 *
 * Deliberately broken builds (each one -D definition, for the conformance
 * suite to catch; see impl/task_build.py's build_variant):
 *   AST_BROKEN_LOST_WAKE       notify ignores a wake while RUNNING (the wake
 *                              during a poll is lost: no second poll)
 *   AST_BROKEN_DOUBLE_ENQUEUE  notify of a NOTIFIED, not running task pushes
 *                              it again (+1 reference): queued twice
 *   AST_BROKEN_WAKE_DROPS      wake also counts a drop call and releases an
 *                              extra reference (the task is freed early)
 *   AST_BROKEN_REFCOUNT        clone does not increment the reference count
 *                              (the last drop frees a task other wakers use)
 * And one unchecked build:
 *   AST_UNCHECKED              freed tasks go straight back to malloc, no
 *                              quarantine: a use after free is undefined
 *                              behaviour (for comparison benchmarks only)
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------
 * Public constants and structs (mirrored in impl/task_build.py's cdef)
 * ------------------------------------------------------------------------ */

#define AST_MAGIC_LIVE 0x4b534154u /* "TASK" */
#define AST_MAGIC_DEAD 0x44414544u /* "DEAD" */
#define AST_POISON 0xDD

#define AST_RUNNING 0x1ull
#define AST_NOTIFIED 0x2ull
#define AST_COMPLETE 0x4ull
#define AST_CANCELLED 0x8ull
#define AST_REF_SHIFT 6
#define AST_REF_ONE (1ull << AST_REF_SHIFT)
#define AST_FLAGS_MASK (AST_REF_ONE - 1)

/* calls[] indices */
#define AST_CALL_CLONE 0
#define AST_CALL_WAKE 1
#define AST_CALL_WAKE_BY_REF 2
#define AST_CALL_DROP 3

/* holds bits: the handle references a task still holds */
#define AST_HOLD_OWNED 0x1u
#define AST_HOLD_JOIN 0x2u

/* Operations, for error reports. */
#define AST_OP_CLONE 1
#define AST_OP_WAKE 2
#define AST_OP_WAKE_BY_REF 3
#define AST_OP_DROP 4
#define AST_OP_NEW_WAKER 5
#define AST_OP_POLL 6
#define AST_OP_JOIN_DROP 7
#define AST_OP_CANCEL 8
#define AST_OP_SPAWN 9
#define AST_OP_AW_REGISTER 10
#define AST_OP_AW_TAKE 11
#define AST_OP_READ 12

/* Error codes (functions return their negation). */
#define AST_ERR_FREED 1     /* the task's last reference was dropped */
#define AST_ERR_NOT_TASK 2  /* the data pointer is not a task header */
#define AST_ERR_REFCOUNT 3  /* reference count underflow */
#define AST_ERR_STATE 4     /* not allowed in the task's (or AtomicWaker's) state */
#define AST_ERR_NOMEM 5     /* out of memory */
#define AST_ERR_INVAL 6     /* bad argument (NULL, ...) */
#define AST_ERR_CLOSED 7    /* the run queue is closed */
#define AST_ERR_UNKNOWN 8   /* no task was ever issued with that id */

/* ast_task_info status */
#define AST_STATUS_UNKNOWN 0
#define AST_STATUS_LIVE 1
#define AST_STATUS_QUARANTINED 2
#define AST_STATUS_RELEASED 3

/* ast_task_poll_begin results */
#define AST_BEGIN_RUNNING 0
#define AST_BEGIN_COMPLETE 1
#define AST_NEXT_EMPTY 2 /* ast_queue_next: nothing queued */
/* ast_task_poll_end results */
#define AST_END_COMPLETE 0
#define AST_END_IDLE 1
#define AST_END_REQUEUED 2

/* AtomicWaker state bits */
#define AST_AW_WAITING 0
#define AST_AW_REGISTERING 1
#define AST_AW_WAKING 2

struct ast_vtable;
struct ast_raw_waker {
    const void *data;
    const struct ast_vtable *vtable;
};
struct ast_vtable {
    struct ast_raw_waker (*clone)(const void *);
    void (*wake)(const void *);
    void (*wake_by_ref)(const void *);
    void (*drop)(const void *);
};

struct ast_task;
struct ast_queue;

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
    uint64_t spare_nodes; /* pushes of an already queued task (broken builds) */
};

struct ast_atomic_waker {
    _Atomic uintptr_t state;
    struct ast_raw_waker waker; /* vtable NULL: none stored */
};

struct ast_next {
    struct ast_task *task;
    uint64_t id;
};

struct ast_error {
    int code;
    int op;
    uint64_t task;
    const void *data;
};

struct ast_task_info {
    int status;
    uint32_t holds;
    uint64_t id;
    uint64_t state;
    uint64_t calls[4];
};

struct ast_stress_result {
    uint64_t iterations;
    uint64_t saw_flag; /* the consumer saw the flag after registering */
    uint64_t woken;    /* it did not, and was woken */
    uint64_t lost;     /* it did not, and no wake came: a lost wake-up */
    uint64_t polls;
    int64_t refs_left; /* references left beyond the handles' (0: no leak) */
    uint64_t calls[4];
    uint64_t elapsed_ns;
    uint64_t begin_saw_waking; /* register_begin saw WAKING (AtomicWaker stress) */
    uint64_t end_woke;         /* register_end found WAKING and woke (idem) */
};

/* ------------------------------------------------------------------------
 * The last error, per thread
 * ------------------------------------------------------------------------ */

static _Thread_local struct ast_error tls_error;

static void err_clear(void)
{
    tls_error.code = 0;
}

static int err_set(int op, int code, const struct ast_task *t, const void *data)
{
    /* Keep the first error of a call: it is the one the caller caused. */
    if (tls_error.code == 0) {
        tls_error.code = code;
        tls_error.op = op;
        tls_error.task = t ? t->id : 0;
        tls_error.data = data;
    }
    return -code;
}

static int err_result(void)
{
    return tls_error.code ? -tls_error.code : 0;
}

const struct ast_error *ast_last_error(void)
{
    return &tls_error;
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
 * The run queue
 * ------------------------------------------------------------------------ */

static void queue_unref(struct ast_queue *q)
{
    if (atomic_fetch_sub_explicit(&q->refs, 1, memory_order_acq_rel) == 1) {
        pthread_mutex_destroy(&q->lock);
        free(q);
    }
}

struct ast_queue *ast_queue_new(void)
{
    struct ast_queue *q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    if (pthread_mutex_init(&q->lock, NULL) != 0) {
        free(q);
        return NULL;
    }
    atomic_init(&q->refs, 1);
    atomic_init(&q->tasks, 0);
    q->unpark_fd = -1;
    return q;
}

static void unpark_write(int fd)
{
    uint64_t one = 1;
    /* EAGAIN: the eventfd counter is full, so it is readable already. */
    ssize_t r;
    do {
        r = write(fd, &one, sizeof one);
    } while (r < 0 && errno == EINTR);
}

static void ref_release(struct ast_task *t, int op);

/* Push t on the tail of its queue.  The caller has taken the reference
 * this entry holds. */
static void queue_push(struct ast_task *t, int op)
{
    struct ast_queue *q = t->queue;
    struct ast_qnode *node = NULL;
    pthread_mutex_lock(&q->lock);
    if (q->closed) {
        pthread_mutex_unlock(&q->lock);
        ref_release(t, op); /* nobody will pop it */
        return;
    }
    if (!t->linked) {
        node = &t->node;
        t->linked = 1;
    } else {
        /* Only a broken build pushes a queued task: a second entry. */
        node = malloc(sizeof *node);
        if (!node) {
            pthread_mutex_unlock(&q->lock);
            err_set(op, AST_ERR_NOMEM, t, t);
            ref_release(t, op);
            return;
        }
        q->spare_nodes++;
    }
    node->next = NULL;
    node->task = t;
    if (q->tail)
        q->tail->next = node;
    else
        q->head = node;
    q->tail = node;
    q->len++;
    int unpark = q->parked && q->unpark_fd >= 0;
    int fd = q->unpark_fd;
    q->parked = 0;
    pthread_mutex_unlock(&q->lock);
    if (unpark)
        unpark_write(fd);
}

/* Pop the head entry: its reference passes to the caller.  NULL: empty. */
struct ast_task *ast_queue_pop(struct ast_queue *q)
{
    if (!q)
        return NULL;
    pthread_mutex_lock(&q->lock);
    struct ast_qnode *node = q->head;
    if (!node) {
        pthread_mutex_unlock(&q->lock);
        return NULL;
    }
    q->head = node->next;
    if (!q->head)
        q->tail = NULL;
    q->len--;
    struct ast_task *t = node->task;
    if (node == &t->node)
        t->linked = 0;
    else
        free(node);
    pthread_mutex_unlock(&q->lock);
    return t;
}

size_t ast_queue_len(struct ast_queue *q)
{
    pthread_mutex_lock(&q->lock);
    size_t n = q->len;
    pthread_mutex_unlock(&q->lock);
    return n;
}

/* The ids of the queued entries, head first: up to cap of them written to
 * out; returns how many entries there are. */
size_t ast_queue_ids(struct ast_queue *q, uint64_t *out, size_t cap)
{
    pthread_mutex_lock(&q->lock);
    size_t i = 0;
    for (struct ast_qnode *n = q->head; n; n = n->next, i++)
        if (i < cap)
            out[i] = n->task->id;
    pthread_mutex_unlock(&q->lock);
    return i;
}

uint64_t ast_queue_tasks(struct ast_queue *q)
{
    return atomic_load_explicit(&q->tasks, memory_order_acquire);
}

uint64_t ast_queue_spare_nodes(struct ast_queue *q)
{
    pthread_mutex_lock(&q->lock);
    uint64_t n = q->spare_nodes;
    pthread_mutex_unlock(&q->lock);
    return n;
}

/* The eventfd to write when a push finds the queue parked (-1: none). */
void ast_queue_set_unpark_fd(struct ast_queue *q, int fd)
{
    pthread_mutex_lock(&q->lock);
    q->unpark_fd = fd;
    pthread_mutex_unlock(&q->lock);
}

/* Before blocking: 1 if the queue is empty (now parked: the next push
 * writes to the unpark fd), 0 if it is not (do not block). */
int ast_queue_park(struct ast_queue *q)
{
    pthread_mutex_lock(&q->lock);
    int empty = q->head == NULL;
    q->parked = empty;
    pthread_mutex_unlock(&q->lock);
    return empty;
}

void ast_queue_unpark(struct ast_queue *q)
{
    pthread_mutex_lock(&q->lock);
    q->parked = 0;
    pthread_mutex_unlock(&q->lock);
}

/* Close the queue: later pushes are refused (their reference released at
 * once), the entries still queued are popped and their references
 * released.  Returns how many there were.  The owner still holds its
 * reference (counters stay readable) until ast_queue_release; the memory
 * lives on until that and the last task's free. */
int64_t ast_queue_close(struct ast_queue *q)
{
    if (!q)
        return -AST_ERR_INVAL;
    err_clear();
    pthread_mutex_lock(&q->lock);
    int already = q->closed;
    q->closed = 1;
    q->unpark_fd = -1;
    pthread_mutex_unlock(&q->lock);
    if (already)
        return -AST_ERR_CLOSED;
    int64_t n = 0;
    struct ast_task *t;
    while ((t = ast_queue_pop(q)) != NULL) {
        ref_release(t, AST_OP_CANCEL);
        n++;
    }
    return n;
}

/* The owner's reference: q must not be used by its owner afterwards. */
void ast_queue_release(struct ast_queue *q)
{
    if (q)
        queue_unref(q);
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
#ifdef AST_UNCHECKED
    reg_remove(t);
    free(t);
#else
    memset((char *)t + AST_POISON_FROM, AST_POISON, sizeof *t - AST_POISON_FROM);
    atomic_store_explicit(&t->magic, AST_MAGIC_DEAD, memory_order_release);
    t->quarantine_next = quarantine_head;
    quarantine_head = t;
    quarantine_len++;
#endif
    pthread_mutex_unlock(&reg_lock);
    atomic_fetch_sub_explicit(&live_n, 1, memory_order_acq_rel);
    if (q) {
        atomic_fetch_sub_explicit(&q->tasks, 1, memory_order_acq_rel);
        queue_unref(q);
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
#ifdef AST_BROKEN_LOST_WAKE
            return;
#endif
            if (s & AST_NOTIFIED)
                return;
            n = s | AST_NOTIFIED;
        } else if (s & AST_NOTIFIED) {
#ifndef AST_BROKEN_DOUBLE_ENQUEUE
            return;
#else
            n = s + AST_REF_ONE;
            push = 1;
#endif
        } else {
            n = (s | AST_NOTIFIED) + AST_REF_ONE;
            push = 1;
        }
        if (atomic_compare_exchange_weak_explicit(&t->state, &s, n, memory_order_acq_rel, memory_order_acquire)) {
            if (push)
                queue_push(t, op);
            return;
        }
    }
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
#ifndef AST_BROKEN_REFCOUNT
    ref_acquire(t);
#endif
    return w;
}

static void vt_wake(const void *data)
{
    struct ast_task *t = (struct ast_task *)data;
    if (check(t, AST_OP_WAKE) < 0)
        return;
    count_call(t, AST_CALL_WAKE);
    notify(t, AST_OP_WAKE);
#ifdef AST_BROKEN_WAKE_DROPS
    count_call(t, AST_CALL_DROP);
    ref_release(t, AST_OP_WAKE);
    if (check(t, AST_OP_WAKE) < 0)
        return; /* the extra release freed it: the next one is a use after free */
#endif
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
static int raw_ok(const struct ast_raw_waker *w, int op)
{
    if (!w || !w->vtable)
        return err_set(op, AST_ERR_INVAL, NULL, w ? w->data : NULL);
    return 0;
}

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
        queue_push(t, AST_OP_SPAWN);
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
        queue_push(t, AST_OP_POLL); /* the popped reference becomes the queue's */
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
        tls_error.task = id;
        r = (id >= 1 && id < atomic_load_explicit(&next_id, memory_order_acquire)) ? AST_ERR_FREED : AST_ERR_UNKNOWN;
        tls_error.code = r;
        tls_error.op = AST_OP_NEW_WAKER;
        tls_error.data = NULL;
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

/* ------------------------------------------------------------------------
 * AtomicWaker
 * ------------------------------------------------------------------------ */

static void aw_call_wake(struct ast_raw_waker w)
{
    if (w.vtable)
        w.vtable->wake(w.data);
}

/* The steps, without clearing the thread's error slot (the whole
 * operations run several steps and report the first error); the public
 * ast_aw_* step functions below clear it, then run one. */

/* CAS WAITING -> REGISTERING.  Returns the state seen: AST_AW_WAITING means
 * the caller holds the registering lock and goes on with register_store and
 * register_end.  If a wake was in progress (WAKING seen), the new waker is
 * woken by reference here: the wake may be taking the old one. */
static int aw_register_begin(struct ast_atomic_waker *aw, const struct ast_raw_waker *w)
{
    if (!aw || raw_ok(w, AST_OP_AW_REGISTER) < 0)
        return err_set(AST_OP_AW_REGISTER, AST_ERR_INVAL, NULL, NULL);
    uintptr_t seen = AST_AW_WAITING;
    if (atomic_compare_exchange_strong_explicit(&aw->state, &seen, AST_AW_REGISTERING, memory_order_acquire,
                                                memory_order_acquire))
        return AST_AW_WAITING;
    if (seen == AST_AW_WAKING)
        w->vtable->wake_by_ref(w->data);
    /* REGISTERING (| WAKING): another register holds the lock; this one
     * does nothing (futures-rs: concurrent registers are a caller error). */
    return err_result() ? err_result() : (int)seen;
}

/* With the registering lock held: keep the stored waker if it will wake
 * the same task (futures-rs skips the clone then), else clone w, store the
 * clone and drop the old one.  Returns 1 if it cloned, 0 if it kept the
 * stored one. */
static int aw_register_store(struct ast_atomic_waker *aw, const struct ast_raw_waker *w)
{
    if (!aw || raw_ok(w, AST_OP_AW_REGISTER) < 0)
        return err_set(AST_OP_AW_REGISTER, AST_ERR_INVAL, NULL, NULL);
    if (!(atomic_load_explicit(&aw->state, memory_order_relaxed) & AST_AW_REGISTERING))
        return err_set(AST_OP_AW_REGISTER, AST_ERR_STATE, NULL, aw);
    if (aw->waker.vtable && ast_raw_will_wake(&aw->waker, w))
        return 0;
    struct ast_raw_waker fresh = w->vtable->clone(w->data);
    if (err_result() < 0)
        return err_result();
    struct ast_raw_waker old = aw->waker;
    aw->waker = fresh;
    if (old.vtable)
        old.vtable->drop(old.data);
    return err_result() ? err_result() : 1;
}

/* CAS REGISTERING -> WAITING.  0: done.  1: a wake arrived meanwhile (it
 * saw REGISTERING and left the waker to us): the stored waker was taken,
 * the state reset to WAITING, and the waker woken. */
static int aw_register_end(struct ast_atomic_waker *aw)
{
    if (!aw)
        return err_set(AST_OP_AW_REGISTER, AST_ERR_INVAL, NULL, NULL);
    uintptr_t seen = AST_AW_REGISTERING;
    if (atomic_compare_exchange_strong_explicit(&aw->state, &seen, AST_AW_WAITING, memory_order_acq_rel,
                                                memory_order_acquire))
        return 0;
    if (seen != (AST_AW_REGISTERING | AST_AW_WAKING))
        return err_set(AST_OP_AW_REGISTER, AST_ERR_STATE, NULL, aw);
    struct ast_raw_waker w = aw->waker;
    aw->waker.data = NULL;
    aw->waker.vtable = NULL;
    atomic_exchange_explicit(&aw->state, AST_AW_WAITING, memory_order_acq_rel);
    aw_call_wake(w);
    return err_result() ? err_result() : 1;
}

/* fetch_or WAKING; returns the previous state. */
static int aw_take_begin(struct ast_atomic_waker *aw)
{
    if (!aw)
        return err_set(AST_OP_AW_TAKE, AST_ERR_INVAL, NULL, NULL);
    return (int)atomic_fetch_or_explicit(&aw->state, AST_AW_WAKING, memory_order_acq_rel);
}

/* If prev (take_begin's result) was WAITING, this take owns the cell: take
 * the stored waker into *out and clear WAKING.  Returns 1 if a waker was
 * taken, 0 if not (none stored, or a register or another take was in
 * progress: a register in progress wakes in its register_end). */
static int aw_take_end(struct ast_atomic_waker *aw, int prev, struct ast_raw_waker *out)
{
    if (!aw || !out)
        return err_set(AST_OP_AW_TAKE, AST_ERR_INVAL, NULL, NULL);
    out->data = NULL;
    out->vtable = NULL;
    if (prev != AST_AW_WAITING)
        return 0;
    *out = aw->waker;
    aw->waker.data = NULL;
    aw->waker.vtable = NULL;
    atomic_fetch_and_explicit(&aw->state, ~(uintptr_t)AST_AW_WAKING, memory_order_release);
    return out->vtable != NULL;
}

int ast_aw_register_begin(struct ast_atomic_waker *aw, const struct ast_raw_waker *w)
{
    err_clear();
    return aw_register_begin(aw, w);
}

int ast_aw_register_store(struct ast_atomic_waker *aw, const struct ast_raw_waker *w)
{
    err_clear();
    return aw_register_store(aw, w);
}

int ast_aw_register_end(struct ast_atomic_waker *aw)
{
    err_clear();
    return aw_register_end(aw);
}

int ast_aw_take_begin(struct ast_atomic_waker *aw)
{
    err_clear();
    return aw_take_begin(aw);
}

int ast_aw_take_end(struct ast_atomic_waker *aw, int prev, struct ast_raw_waker *out)
{
    err_clear();
    return aw_take_end(aw, prev, out);
}

/* The whole operations, composed of exactly the steps above.  register:
 * 0, or the first error (the lock is released even after a failed store). */
int ast_aw_register(struct ast_atomic_waker *aw, const struct ast_raw_waker *w)
{
    err_clear();
    int seen = aw_register_begin(aw, w);
    if (seen != AST_AW_WAITING)
        return seen < 0 ? seen : 0;
    int r = aw_register_store(aw, w);
    int e = aw_register_end(aw);
    return r < 0 ? r : e < 0 ? e : 0;
}

/* take: 1 and the waker in *out, or 0 (none). */
int ast_aw_take(struct ast_atomic_waker *aw, struct ast_raw_waker *out)
{
    err_clear();
    int prev = aw_take_begin(aw);
    if (prev < 0)
        return prev;
    return aw_take_end(aw, prev, out);
}

/* take, then wake the taken waker.  1 if one was woken. */
int ast_aw_wake(struct ast_atomic_waker *aw)
{
    struct ast_raw_waker w;
    int r = ast_aw_take(aw, &w);
    if (r <= 0)
        return r;
    aw_call_wake(w);
    return err_result() ? err_result() : 1;
}

int ast_aw_state(const struct ast_atomic_waker *aw)
{
    return (int)atomic_load_explicit((_Atomic uintptr_t *)&aw->state, memory_order_acquire);
}

/* The stored waker, borrowed (NULL vtable: none). */
struct ast_raw_waker ast_aw_peek(const struct ast_atomic_waker *aw)
{
    return aw->waker;
}

/* Drop the AtomicWaker: drop the stored waker, if any.  1 if one was. */
int ast_aw_drop(struct ast_atomic_waker *aw)
{
    err_clear();
    if (!aw)
        return err_set(AST_OP_AW_TAKE, AST_ERR_INVAL, NULL, NULL);
    struct ast_raw_waker w = aw->waker;
    aw->waker.data = NULL;
    aw->waker.vtable = NULL;
    atomic_store_explicit(&aw->state, AST_AW_WAITING, memory_order_release);
    if (!w.vtable)
        return 0;
    w.vtable->drop(w.data);
    return err_result() ? err_result() : 1;
}

/* ------------------------------------------------------------------------
 * Threaded stress tests and a benchmark
 * ------------------------------------------------------------------------ */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static void spin(uint64_t n)
{
    for (volatile uint64_t i = 0; i < n; i++)
        ;
}

/* Poll the task once if it is queued (pending: it never completes here). */
static int poll_queued(struct ast_queue *q)
{
    struct ast_task *t = ast_queue_pop(q);
    if (!t)
        return 0;
    if (ast_task_poll_begin(t) == AST_BEGIN_RUNNING)
        ast_task_poll_end(t, 0);
    return 1;
}

static int64_t refs_of(struct ast_task *t)
{
    return (int64_t)(atomic_load_explicit(&t->state, memory_order_acquire) >> AST_REF_SHIFT);
}

static void finish_result(struct ast_task *t, struct ast_stress_result *out, int64_t expected_refs)
{
    out->refs_left = refs_of(t) - expected_refs;
    for (int i = 0; i < 4; i++)
        out->calls[i] = atomic_load_explicit(&t->calls[i], memory_order_acquire);
}

static void release_test_task(struct ast_queue *q, struct ast_task *t)
{
    while (poll_queued(q))
        ;
    ast_task_cancel(t);
    ast_task_release_join(t);
    ast_queue_close(q);
    ast_queue_release(q);
}

/* One consumer (the calling thread) and one producer thread, `iters`
 * rounds.  Each round, started together: the producer sets a flag and wakes
 * the AtomicWaker; the consumer registers its waker, then reads the flag.
 * If the flag was not set yet, the producer's wake must reach the task:
 * the consumer waits (up to a second) for the task to be notified, and a
 * round where it never is counts as a lost wake-up.  Between rounds the
 * consumer polls the task if it was woken and empties the AtomicWaker, so
 * each round's wake can only reach the task through that round's register.
 *
 * Rounds start by a spinning handoff (the consumer publishes the round
 * number, the producer spins until it sees it), not a barrier: a barrier's
 * futex wake-up takes microseconds and would decide the order of the two
 * sides by itself.  Even so the handoff's latency depends on the machine,
 * so the head start is steered: a bias (in spin iterations) delays the
 * producer or the consumer, and moves after each round toward the side
 * that came second (the flag seen: the producer was first, delay it more;
 * else the consumer).  The rounds then stay where the two sides meet, and a
 * random jitter on top moves the wake across every step of the register.  The register is run as its steps, to count the racy paths:
 * begin seeing WAKING (the new waker is woken by reference) and end finding
 * WAKING (the register wakes the waker it stored). */
struct aw_stress {
    struct ast_atomic_waker aw;
    _Atomic int flag;
    _Atomic uint64_t go;       /* the round the consumer started */
    _Atomic uint64_t finished; /* the round the producer finished */
    _Atomic uint64_t producer_spin; /* the producer's head-start delay this round */
    uint64_t iters;
    uint64_t seed;
};

static void wait_for(_Atomic uint64_t *v, uint64_t want)
{
    for (unsigned k = 1; atomic_load_explicit(v, memory_order_acquire) != want; k++)
        if ((k & 255) == 0)
            sched_yield(); /* not hogging a core the other side needs */
}

static void *aw_producer(void *arg)
{
    struct aw_stress *s = arg;
    for (uint64_t i = 1; i <= s->iters; i++) {
        wait_for(&s->go, i);
        spin(atomic_load_explicit(&s->producer_spin, memory_order_relaxed));
        atomic_store_explicit(&s->flag, 1, memory_order_relaxed);
        ast_aw_wake(&s->aw);
        atomic_store_explicit(&s->finished, i, memory_order_release);
    }
    return NULL;
}

int ast_stress_atomic_waker(uint64_t iters, uint64_t seed, struct ast_stress_result *out)
{
    if (!out || iters == 0)
        return -AST_ERR_INVAL;
    memset(out, 0, sizeof *out);
    struct ast_queue *q = ast_queue_new();
    if (!q)
        return -AST_ERR_NOMEM;
    struct ast_task *t;
    int r = ast_task_new(q, 0, &t);
    if (r < 0) {
        ast_queue_close(q);
        ast_queue_release(q);
        return r;
    }
    struct ast_raw_waker w;
    ast_task_waker(t, &w);
    struct aw_stress s;
    memset(&s, 0, sizeof s);
    atomic_init(&s.aw.state, AST_AW_WAITING);
    atomic_init(&s.flag, 0);
    atomic_init(&s.go, 0);
    atomic_init(&s.finished, 0);
    s.iters = iters;
    s.seed = seed | 1;
    pthread_t th;
    uint64_t t0 = now_ns();
    if (pthread_create(&th, NULL, aw_producer, &s) != 0) {
        ast_raw_drop(&w);
        release_test_task(q, t);
        return -AST_ERR_NOMEM;
    }
    uint64_t rng = (s.seed * 0x9E3779B97F4A7C15ull) | 1;
    int64_t bias = 0; /* > 0: the consumer waits that long, < 0: the producer */
    for (uint64_t i = 1; i <= iters; i++) {
        uint64_t r = xorshift(&rng);
        uint64_t jitter_c = r & 127, jitter_p = (r >> 7) & 127;
        atomic_store_explicit(&s.producer_spin, (bias < 0 ? (uint64_t)-bias : 0) + jitter_p, memory_order_relaxed);
        atomic_store_explicit(&s.go, i, memory_order_release);
        spin((bias > 0 ? (uint64_t)bias : 0) + jitter_c);
        /* ast_aw_register, step by step. */
        int seen = ast_aw_register_begin(&s.aw, &w);
        if (seen == AST_AW_WAITING) {
            ast_aw_register_store(&s.aw, &w);
            out->end_woke += (uint64_t)(ast_aw_register_end(&s.aw) == 1);
        } else if (seen == AST_AW_WAKING) {
            out->begin_saw_waking++;
        }
        if (atomic_load_explicit(&s.flag, memory_order_relaxed)) {
            out->saw_flag++;
            bias -= 16; /* the producer was first: hold it back */
        } else {
            bias += 16; /* the consumer was first: hold it back */
            uint64_t deadline = 0;
            for (uint64_t k = 0;; k++) {
                if (atomic_load_explicit(&t->state, memory_order_acquire) & AST_NOTIFIED) {
                    out->woken++;
                    break;
                }
                if ((k & 1023) == 1023) {
                    uint64_t now = now_ns();
                    if (!deadline)
                        deadline = now + 1000000000u;
                    else if (now > deadline) {
                        out->lost++;
                        break;
                    }
                    sched_yield();
                }
            }
        }
        if (bias > 20000 || bias < -20000)
            bias = 0; /* a descheduled thread threw it off: start over */
        wait_for(&s.finished, i);
        out->polls += (uint64_t)poll_queued(q);
        atomic_store_explicit(&s.flag, 0, memory_order_relaxed);
        ast_aw_drop(&s.aw);
        out->iterations++;
    }
    pthread_join(th, NULL);
    out->elapsed_ns = now_ns() - t0;
    ast_aw_drop(&s.aw);
    ast_raw_drop(&w);
    /* Left: the JoinHandle's and the owned set's references. */
    finish_result(t, out, 2);
    release_test_task(q, t);
    return 0;
}

/* Wakes from `threads` other threads while this one polls: each thread
 * `iters` times bumps a counter, then clones the waker, wakes by reference
 * and wakes the clone.  The poller records the counter at each poll; once
 * every thread is done and the queue is empty, the last poll must have seen
 * the final count (a wake after the last increment was not lost).
 * `lost` is 1 if it did not; `refs_left` counts leaked references. */
struct remote_stress {
    struct ast_raw_waker w;
    _Atomic uint64_t produced;
    _Atomic int running;
    uint64_t iters;
};

static void *remote_waker(void *arg)
{
    struct remote_stress *s = arg;
    for (uint64_t i = 0; i < s->iters; i++) {
        atomic_fetch_add_explicit(&s->produced, 1, memory_order_release);
        struct ast_raw_waker c = s->w.vtable->clone(s->w.data);
        c.vtable->wake_by_ref(c.data);
        c.vtable->wake(c.data);
    }
    atomic_fetch_sub_explicit(&s->running, 1, memory_order_acq_rel);
    return NULL;
}

int ast_stress_remote_wakes(uint64_t threads, uint64_t iters, struct ast_stress_result *out)
{
    if (!out || threads == 0 || threads > 64 || iters == 0)
        return -AST_ERR_INVAL;
    memset(out, 0, sizeof *out);
    struct ast_queue *q = ast_queue_new();
    if (!q)
        return -AST_ERR_NOMEM;
    struct ast_task *t;
    int r = ast_task_new(q, 0, &t);
    if (r < 0) {
        ast_queue_close(q);
        ast_queue_release(q);
        return r;
    }
    struct remote_stress s;
    memset(&s, 0, sizeof s);
    ast_task_waker(t, &s.w);
    atomic_init(&s.produced, 0);
    atomic_init(&s.running, (int)threads);
    s.iters = iters;
    pthread_t th[64];
    uint64_t started = 0;
    uint64_t t0 = now_ns();
    for (; started < threads; started++)
        if (pthread_create(&th[started], NULL, remote_waker, &s) != 0) {
            atomic_fetch_sub_explicit(&s.running, (int)(threads - started), memory_order_acq_rel);
            break;
        }
    uint64_t seen = 0;
    for (;;) {
        int done = atomic_load_explicit(&s.running, memory_order_acquire) == 0;
        struct ast_task *p = ast_queue_pop(q);
        if (p) {
            if (ast_task_poll_begin(p) == AST_BEGIN_RUNNING) {
                seen = atomic_load_explicit(&s.produced, memory_order_acquire);
                out->polls++;
                ast_task_poll_end(p, 0);
            }
        } else if (done) {
            break; /* every wake has been pushed, and the queue is empty */
        } else {
            sched_yield();
        }
    }
    for (uint64_t i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    out->elapsed_ns = now_ns() - t0;
    out->iterations = started * iters;
    out->lost = seen != out->iterations;
    ast_raw_drop(&s.w);
    finish_result(t, out, 2);
    release_test_task(q, t);
    return 0;
}

/* Nanoseconds for n cycles of wake_by_ref + pop + poll (pending), in C. */
int64_t ast_bench_wakes(uint64_t n)
{
    struct ast_queue *q = ast_queue_new();
    if (!q)
        return -AST_ERR_NOMEM;
    struct ast_task *t;
    int r = ast_task_new(q, 0, &t);
    if (r < 0) {
        ast_queue_close(q);
        ast_queue_release(q);
        return r;
    }
    struct ast_raw_waker w;
    ast_task_waker(t, &w);
    uint64_t polls = 0;
    uint64_t t0 = now_ns();
    for (uint64_t i = 0; i < n; i++) {
        w.vtable->wake_by_ref(w.data);
        struct ast_task *p = ast_queue_pop(q);
        if (p && ast_task_poll_begin(p) == AST_BEGIN_RUNNING) {
            ast_task_poll_end(p, 0);
            polls++;
        }
    }
    uint64_t t1 = now_ns();
    ast_raw_drop(&w);
    release_test_task(q, t);
    return polls == n ? (int64_t)(t1 - t0) : -AST_ERR_STATE;
}

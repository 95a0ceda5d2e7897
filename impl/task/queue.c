/*
 * queue.c -- the run queue (see task.h).
 *
 * A mutex-protected FIFO of intrusive nodes (the task's `node`); pushes come
 * from any thread.  notify never pushes a task whose node is already linked;
 * should a push find it linked anyway, it uses a separately allocated node
 * (counted by ast_queue_spare_nodes), so the duplicate shows in the queue
 * instead of corrupting the list.  The executor parks with ast_queue_park
 * before blocking in the reactor; a push onto a parked queue writes to the
 * queue's unpark eventfd (the reactor's Waker), so a wake from another thread
 * ends the reactor wait.  The queue itself is reference-counted (its owner,
 * plus one per task created on it) so a stray waker that outlives the
 * executor never touches freed memory.
 */

#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

void asti_queue_unref(struct ast_queue *q)
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

/* Push t on the tail of its queue.  The caller has taken the reference
 * this entry holds. */
void asti_queue_push(struct ast_task *t, int op)
{
    struct ast_queue *q = t->queue;
    struct ast_qnode *node = NULL;
    pthread_mutex_lock(&q->lock);
    if (q->closed) {
        pthread_mutex_unlock(&q->lock);
        asti_ref_release(t, op); /* nobody will pop it */
        return;
    }
    if (!t->linked) {
        node = &t->node;
        t->linked = 1;
    } else {
        /* notify never pushes a queued task; should a push find the node
         * linked anyway, it gets a second entry, not a corrupted list. */
        node = malloc(sizeof *node);
        if (!node) {
            pthread_mutex_unlock(&q->lock);
            err_set(op, AST_ERR_NOMEM, t, t);
            asti_ref_release(t, op);
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
        asti_ref_release(t, AST_OP_CANCEL);
        n++;
    }
    return n;
}

/* The owner's reference: q must not be used by its owner afterwards. */
void ast_queue_release(struct ast_queue *q)
{
    if (q)
        asti_queue_unref(q);
}

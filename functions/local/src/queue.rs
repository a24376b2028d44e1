//! [`WorkQueue`] on SQLite with SQS semantics.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use docket_core::ports::{
    Clock, Delivery, OutgoingMessage, QueueDepth, QueueError, QueueName, Receipt, WorkQueue,
    check_message_sizes,
};
use rusqlite::{Connection, OptionalExtension, params};

use crate::db::{Database, backend_error, millis};

/// Queues in the `messages` table: a message is visible when its
/// `visible_ms` has passed; receiving it hides it for the visibility timeout
/// and counts the receive; a visible message already received
/// `max_receives` times moves to the dead-letter companion instead.
/// The oldest visible messages of a queue. The index on (queue, dead, id)
/// is named: it gives them in id order from the head of the queue, past
/// only the few in flight or waiting out a backoff. Left to itself the
/// planner takes the (…, visible_ms) index instead and sorts every visible
/// message of the queue on each receive — a cost that grows with the queue.
const RECEIVE: &str = "SELECT id, body, receive_count FROM messages INDEXED BY messages_ready
     WHERE queue = ?1 AND dead = ?2 AND visible_ms <= ?3
     ORDER BY id LIMIT ?4";

/// The fairness groups with messages in a queue and their weights (that of
/// each group's oldest message), found by skipping along the (queue, dead,
/// grp, id) index from one group to the next: a seek per group, whatever
/// the queue's length.
const GROUPS: &str = "WITH RECURSIVE g(grp) AS (
         SELECT min(grp) FROM messages INDEXED BY messages_by_group
         WHERE queue = ?1 AND dead = ?2
         UNION ALL
         SELECT (SELECT min(grp) FROM messages INDEXED BY messages_by_group
                 WHERE queue = ?1 AND dead = ?2 AND grp > g.grp)
         FROM g WHERE g.grp IS NOT NULL)
     SELECT grp, (SELECT weight FROM messages INDEXED BY messages_by_group
                  WHERE queue = ?1 AND dead = ?2 AND grp = g.grp ORDER BY id LIMIT 1)
     FROM g WHERE grp IS NOT NULL";

/// The oldest visible messages of one group, as [`RECEIVE`] for a queue.
const RECEIVE_GROUP: &str =
    "SELECT id, body, receive_count FROM messages INDEXED BY messages_by_group
     WHERE queue = ?1 AND dead = ?2 AND grp = ?3 AND visible_ms <= ?4
     ORDER BY id LIMIT ?5";

pub struct SqliteQueue {
    db: Arc<Database>,
    clock: Arc<dyn Clock>,
    max_receives: u32,
    /// Moves on by each receive's size: the group served first.
    turn: AtomicUsize,
}

/// A message a receive may take: id, body, receive count.
type Candidate = (i64, String, u32);

/// A row of [`RECEIVE`] or [`RECEIVE_GROUP`].
fn candidate(row: &rusqlite::Row<'_>) -> rusqlite::Result<Candidate> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Receipts are `<message id>:<nonce>`; a new receive changes the nonce,
/// which makes older receipts stale.
fn parse_receipt(receipt: &Receipt) -> Option<i64> {
    receipt.0.split_once(':')?.0.parse().ok()
}

impl SqliteQueue {
    /// A queue over `db`, timed by `clock`.
    pub fn new(db: Arc<Database>, clock: Arc<dyn Clock>, max_receives: u32) -> Self {
        Self {
            db,
            clock,
            max_receives: max_receives.max(1),
            turn: AtomicUsize::new(0),
        }
    }

    async fn receive_from(
        &self,
        queue: QueueName,
        dead: bool,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<Delivery>, QueueError> {
        let now = millis(self.clock.now());
        let max_receives = self.max_receives;
        // With more groups than a receive takes, each group gets one
        // message: the next receive starts with the group after the last.
        let turn = self.turn.fetch_add(max, Ordering::Relaxed);
        self.db
            .write(move |connection| {
                let take = Take {
                    queue,
                    dead,
                    now,
                    turn,
                };
                receive(connection, &take, max, visibility, max_receives)
            })
            .await
    }

    /// Makes every message a process received and did not settle visible
    /// now, as if its visibility timeout had passed; returns how many.
    /// Only for the owner of the state directory
    /// ([`crate::LocalBackend::take_ownership`]): every claim left is then
    /// a dead process's. A message waiting out a backoff stays hidden.
    ///
    /// # Errors
    /// [`QueueError::Backend`].
    pub async fn release_claims(&self) -> Result<u64, QueueError> {
        let now = millis(self.clock.now());
        self.db
            .write(move |connection| {
                connection.execute(
                    "UPDATE messages SET visible_ms = ?1, claimed = 0 WHERE claimed = 1",
                    params![now],
                )
            })
            .await
            .map(|released| released as u64)
            .map_err(|e| QueueError::Backend(backend_error(e)))
    }

    async fn delete(&self, dead: bool, receipts: &[Receipt]) -> Result<(), QueueError> {
        let receipts = receipts.to_vec();
        self.db
            .write(move |connection| delete(connection, dead, &receipts))
            .await
    }
}

/// What one receive takes from: the queue (its dead-letter companion when
/// `dead`), at `now`, serving groups from the `turn`th.
struct Take {
    queue: QueueName,
    dead: bool,
    now: i64,
    turn: usize,
}

/// Up to `want` visible messages of the queue, oldest first within each
/// fairness group, the groups in turn: with more than one group each gets
/// a share of the receive by its weight (at least one message; groups past
/// `want` wait for a later turn), and what a group with less than its
/// share leaves goes to the oldest of any group. One tenant's backlog so does not hold another's batch behind
/// it; a queue of one group is read as before.
fn candidates(
    tx: &rusqlite::Transaction<'_>,
    take: &Take,
    want: usize,
) -> rusqlite::Result<Vec<Candidate>> {
    let queue = take.queue.as_str();
    let oldest = |limit: usize| -> rusqlite::Result<Vec<Candidate>> {
        tx.prepare_cached(RECEIVE)?
            .query_map(params![queue, take.dead, take.now, limit as i64], candidate)?
            .collect()
    };
    let groups: Vec<(String, i64)> = tx
        .prepare_cached(GROUPS)?
        .query_map(params![queue, take.dead], |row| {
            Ok((
                row.get(0)?,
                row.get::<_, Option<i64>>(1)?.unwrap_or(1).max(1),
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;
    if groups.len() <= 1 {
        return oldest(want);
    }
    let total: i64 = groups.iter().map(|(_, weight)| weight).sum();
    let first = take.turn % groups.len();
    let mut picked = Vec::with_capacity(want);
    for (group, weight) in groups[first..].iter().chain(&groups[..first]) {
        if picked.len() >= want {
            break;
        }
        let share = (want as i64 * weight / total).max(1) as usize;
        let limit = share.min(want - picked.len());
        let rows = tx
            .prepare_cached(RECEIVE_GROUP)?
            .query_map(
                params![queue, take.dead, group, take.now, limit as i64],
                candidate,
            )?
            .collect::<rusqlite::Result<Vec<Candidate>>>()?;
        picked.extend(rows);
    }
    if picked.len() < want {
        let taken: HashSet<i64> = picked.iter().map(|(id, _, _)| *id).collect();
        let more = oldest(want + taken.len())?;
        picked.extend(
            more.into_iter()
                .filter(|(id, _, _)| !taken.contains(id))
                .take(want - taken.len()),
        );
    }
    Ok(picked)
}

/// Takes up to `max` visible messages ([`candidates`]), hiding each for
/// `visibility`; a message received `max_receives` times moves to the dead
/// letters instead.
fn receive(
    connection: &mut Connection,
    take: &Take,
    max: usize,
    visibility: Duration,
    max_receives: u32,
) -> Result<Vec<Delivery>, QueueError> {
    let (queue, dead, now) = (take.queue, take.dead, take.now);
    let tx = connection
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(backend_error)?;
    let mut deliveries = Vec::new();
    'fill: while deliveries.len() < max {
        let candidates = candidates(&tx, take, max - deliveries.len()).map_err(backend_error)?;
        if candidates.is_empty() {
            break;
        }
        let mut moved_any = false;
        for (id, body, receive_count) in candidates {
            if !dead && receive_count >= max_receives {
                tx.prepare_cached(
                        "UPDATE messages SET dead = 1, receive_count = 0, visible_ms = ?2, claimed = 0 WHERE id = ?1",
                    )
                    .and_then(|mut s| s.execute(params![id, now]))
                    .map_err(backend_error)?;
                tracing::warn!(
                    queue = queue.as_str(),
                    message_id = id,
                    receive_count,
                    "message dead-lettered"
                );
                moved_any = true;
                continue;
            }
            let receipt = format!("{id}:{:016x}", rand::random::<u64>());
            tx.prepare_cached(
                    "UPDATE messages SET visible_ms = ?2, receive_count = receive_count + 1, receipt = ?3, claimed = 1 WHERE id = ?1",
                )
                .and_then(|mut s| s.execute(params![id, now.saturating_add(duration_ms(visibility)), receipt]))
                .map_err(backend_error)?;
            deliveries.push(Delivery {
                message_id: id.to_string(),
                receipt: Receipt(receipt),
                body,
                receive_count: receive_count + 1,
            });
            if deliveries.len() == max {
                break 'fill;
            }
        }
        if !moved_any {
            break;
        }
    }
    tx.commit().map_err(backend_error)?;
    Ok(deliveries)
}

/// Deletes the messages `receipts` name, if those receipts are current.
fn delete(connection: &mut Connection, dead: bool, receipts: &[Receipt]) -> Result<(), QueueError> {
    let tx = connection.transaction().map_err(backend_error)?;
    {
        let mut delete = tx
            .prepare_cached("DELETE FROM messages WHERE id = ?1 AND receipt = ?2 AND dead = ?3")
            .map_err(backend_error)?;
        for receipt in receipts {
            if let Some(id) = parse_receipt(receipt) {
                delete
                    .execute(params![id, receipt.0, dead])
                    .map_err(backend_error)?;
            }
        }
    }
    tx.commit().map_err(backend_error)?;
    Ok(())
}

#[async_trait]
impl WorkQueue for SqliteQueue {
    async fn send(
        &self,
        queue: QueueName,
        messages: Vec<OutgoingMessage>,
    ) -> Result<(), QueueError> {
        check_message_sizes(&messages)?;
        let now = millis(self.clock.now());
        self.db
            .write(move |connection| {
                let tx = connection.transaction().map_err(backend_error)?;
                {
                    let mut insert = tx
                        .prepare_cached(
                            "INSERT INTO messages (queue, body, visible_ms, grp, weight) VALUES (?1, ?2, ?3, ?4, ?5)",
                        )
                        .map_err(backend_error)?;
                    for message in &messages {
                        insert
                            .execute(params![
                                queue.as_str(),
                                message.body,
                                now.saturating_add(duration_ms(message.delay)),
                                message.group.as_deref().unwrap_or_default(),
                                message.weight.max(1)
                            ])
                            .map_err(backend_error)?;
                    }
                }
                tx.commit().map_err(backend_error)?;
                Ok(())
            })
            .await
    }

    async fn receive(
        &self,
        queue: QueueName,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<Delivery>, QueueError> {
        self.receive_from(queue, false, max, visibility).await
    }

    async fn ack(&self, _queue: QueueName, receipts: &[Receipt]) -> Result<(), QueueError> {
        self.delete(false, receipts).await
    }

    async fn retry_after(
        &self,
        _queue: QueueName,
        receipt: &Receipt,
        delay: Duration,
    ) -> Result<(), QueueError> {
        let Some(id) = parse_receipt(receipt) else {
            return Ok(());
        };
        let visible = millis(self.clock.now()).saturating_add(duration_ms(delay));
        let receipt = receipt.0.clone();
        self.db
            .write(move |connection| {
                connection.execute(
                    "UPDATE messages SET visible_ms = ?3, claimed = 0 WHERE id = ?1 AND receipt = ?2",
                    params![id, receipt, visible],
                )
            })
            .await
            .map_err(backend_error)?;
        Ok(())
    }

    async fn receive_dead(
        &self,
        queue: QueueName,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<Delivery>, QueueError> {
        self.receive_from(queue, true, max, visibility).await
    }

    async fn ack_dead(&self, _queue: QueueName, receipts: &[Receipt]) -> Result<(), QueueError> {
        self.delete(true, receipts).await
    }

    async fn depth(&self, queue: QueueName) -> Result<QueueDepth, QueueError> {
        let now = millis(self.clock.now());
        let depth = self
            .db
            .read(move |connection| {
                connection
            .query_row(
                "SELECT
                    COALESCE(SUM(dead = 0 AND visible_ms <= ?2 OR dead = 0 AND receive_count = 0), 0),
                    COALESCE(SUM(dead = 0 AND visible_ms > ?2 AND receive_count > 0), 0),
                    COALESCE(SUM(dead = 1), 0)
                 FROM messages WHERE queue = ?1",
                params![queue.as_str(), now],
                |row| {
                    Ok(QueueDepth {
                        visible: row.get::<_, i64>(0)? as u64,
                        in_flight: row.get::<_, i64>(1)? as u64,
                        dead: row.get::<_, i64>(2)? as u64,
                    })
                },
            )
            .optional()
            })
            .map_err(backend_error)?;
        Ok(depth.unwrap_or_default())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::RECEIVE;

    /// A receive reads the head of the queue in index order: no sort of the
    /// queue's visible messages (whose cost would grow with the queue).
    #[tokio::test]
    async fn a_receive_reads_the_head_of_the_queue_without_sorting_it() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::db::Database::open(&dir.path().join("state.db")).unwrap();
        let plan: Vec<String> = db.read(|connection| {
            connection
                .prepare(&format!("EXPLAIN QUERY PLAN {RECEIVE}"))
                .unwrap()
                .query_map(rusqlite::params!["work-normal", 0, 0, 10], |row| row.get(3))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        });
        assert_eq!(plan.len(), 1, "{plan:?}");
        assert!(plan[0].contains("USING INDEX messages_ready"), "{plan:?}");
        assert!(
            !plan.iter().any(|step| step.contains("TEMP B-TREE")),
            "{plan:?}"
        );
    }
}

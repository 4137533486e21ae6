//! `REQUEST_RESPONSE` completion: the subscriber's `complete` callback settles an invocation.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::invocations::get;
use super::queue::{DEADLINE_PASSED, expire_overdue};
use super::schema::invocations;
use super::{AnyConnection, StoreError, write_transaction};
use crate::domain::ids::InvocationId;
use crate::domain::invocation::InvocationState;

/// Why a `complete` callback was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompleteRefusal {
    /// The invocation already has its result (delivered with an output, or failed).
    AlreadyCompleted { state: InvocationState, at: Option<NaiveDateTime> },
    /// The response deadline passed (at this time); the invocation has failed.
    PastDeadline(NaiveDateTime),
}

/// Completes a `REQUEST_RESPONSE` invocation with its output (`Ok`) or the subscriber's error
/// (`Err`): delivered or dead, either way finished. A callback that arrives before the
/// subscriber's acknowledgement was recorded is accepted too.
pub fn complete(
    conn: &mut AnyConnection,
    id: &InvocationId,
    result: Result<&str, &str>,
    now: NaiveDateTime,
) -> Result<Result<(), CompleteRefusal>, StoreError> {
    write_transaction(conn, |conn| {
        for _ in 0..3 {
            let invocation = get(conn, id)?;
            match invocation.state {
                InvocationState::Delivered | InvocationState::Dead => {
                    let at = invocation.completed;
                    return Ok(Err(if invocation.last_error.as_deref() == Some(DEADLINE_PASSED) {
                        CompleteRefusal::PastDeadline(invocation.next_attempt_at)
                    } else {
                        CompleteRefusal::AlreadyCompleted { state: invocation.state, at }
                    }));
                }
                InvocationState::Awaiting if invocation.next_attempt_at <= now => {
                    expire_overdue(conn, now)?;
                    return Ok(Err(CompleteRefusal::PastDeadline(invocation.next_attempt_at)));
                }
                _ => {}
            }
            let (state, output, error) = match result {
                Ok(output) => (InvocationState::Delivered, Some(output), None),
                Err(error) => {
                    (InvocationState::Dead, None, Some(format!("the subscriber reported: {error}")))
                }
            };
            let changed = diesel::update(
                invocations::table.find(id.as_str()).filter(invocations::state.eq(invocation.state.as_str())),
            )
            .set((
                invocations::state.eq(state.as_str()),
                invocations::output.eq(output),
                invocations::last_error.eq(error),
                invocations::lease_owner.eq(None::<String>),
                invocations::lease_expires_at.eq(None::<NaiveDateTime>),
                invocations::next_attempt_at.eq(now),
                invocations::completed.eq(Some(now)),
                invocations::updated.eq(now),
            ))
            .execute(conn)?;
            if changed == 1 {
                return Ok(Ok(()));
            }
            // Changed since it was read (the acknowledgement was just recorded): look again.
        }
        let now_state = get(conn, id)?;
        Ok(Err(CompleteRefusal::AlreadyCompleted { state: now_state.state, at: now_state.completed }))
    })
}

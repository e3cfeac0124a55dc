//! The ticket state machine: which transitions are allowed and which tenant update each
//! state change sends.

use std::fmt;

/// The states of a ticket. `Closed` and `Cancelled` are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TicketState {
    New,
    Triaged,
    Dispatched,
    Scheduled,
    InProgress,
    Resolved,
    Closed,
    Escalated,
    Cancelled,
}

impl TicketState {
    pub const ALL: [TicketState; 9] = [
        TicketState::New,
        TicketState::Triaged,
        TicketState::Dispatched,
        TicketState::Scheduled,
        TicketState::InProgress,
        TicketState::Resolved,
        TicketState::Closed,
        TicketState::Escalated,
        TicketState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TicketState::New => "new",
            TicketState::Triaged => "triaged",
            TicketState::Dispatched => "dispatched",
            TicketState::Scheduled => "scheduled",
            TicketState::InProgress => "in_progress",
            TicketState::Resolved => "resolved",
            TicketState::Closed => "closed",
            TicketState::Escalated => "escalated",
            TicketState::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<TicketState> {
        TicketState::ALL
            .into_iter()
            .find(|state| state.as_str() == text)
    }

    /// Returns whether work on the ticket can still happen. Resolved counts as open until the
    /// ticket is closed, because the tenant may report that the fault is back.
    pub fn is_open(self) -> bool {
        !matches!(self, TicketState::Closed | TicketState::Cancelled)
    }

    /// Returns whether escalation and the SLA no longer apply in this state.
    pub fn is_settled(self) -> bool {
        matches!(
            self,
            TicketState::Resolved | TicketState::Closed | TicketState::Cancelled
        )
    }
}

impl fmt::Display for TicketState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A transition the state machine does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ticket cannot go from {from} to {to}")]
pub struct InvalidTransition {
    pub from: TicketState,
    pub to: TicketState,
}

/// Checks one transition. A ticket in a final state moves nowhere. Any open state may go to
/// escalated or cancelled. From escalated, a human may put the ticket anywhere on the normal
/// path. Scheduled to scheduled is a reschedule, and resolved to in progress reopens a job
/// whose fault came back.
pub fn check(from: TicketState, to: TicketState) -> Result<(), InvalidTransition> {
    use TicketState::*;
    let allowed = match (from, to) {
        (Closed | Cancelled, _) => false,
        (_, Escalated) => from != Escalated,
        (_, Cancelled) => true,
        (New, Triaged) => true,
        (Triaged, Dispatched) => true,
        (Dispatched, Scheduled) => true,
        (Dispatched | Scheduled, InProgress) => true,
        (Scheduled, Scheduled) => true,
        (InProgress, Resolved) => true,
        (Resolved, Closed | InProgress) => true,
        (Escalated, Dispatched | Scheduled | InProgress | Resolved | Closed) => true,
        (Triaged | Dispatched | Scheduled, Resolved) => true,
        _ => false,
    };
    if allowed {
        Ok(())
    } else {
        Err(InvalidTransition { from, to })
    }
}

/// Returns the template that informs the tenant of a move into `to`, if any. Reaching
/// `dispatched` sends nothing on its own, because `booked` follows as soon as a slot is chosen.
pub fn template_for(to: TicketState) -> Option<&'static str> {
    match to {
        TicketState::Triaged => Some("received"),
        TicketState::Scheduled => Some("booked"),
        TicketState::InProgress => Some("on_the_way"),
        TicketState::Resolved => Some("done"),
        TicketState::Escalated => Some("escalated"),
        TicketState::Cancelled => Some("cancelled"),
        TicketState::New | TicketState::Dispatched | TicketState::Closed => None,
    }
}

#[cfg(test)]
mod tests {
    use super::TicketState::*;
    use super::*;

    #[test]
    fn normal_path_is_allowed() {
        let path = [
            New, Triaged, Dispatched, Scheduled, InProgress, Resolved, Closed,
        ];
        for pair in path.windows(2) {
            assert_eq!(
                check(pair[0], pair[1]),
                Ok(()),
                "{} -> {}",
                pair[0],
                pair[1]
            );
        }
    }

    #[test]
    fn every_open_state_can_escalate_and_cancel() {
        for state in TicketState::ALL.into_iter().filter(|s| s.is_open()) {
            if state != Escalated {
                assert!(check(state, Escalated).is_ok(), "{state} -> escalated");
            }
            assert!(check(state, Cancelled).is_ok(), "{state} -> cancelled");
        }
    }

    #[test]
    fn final_states_do_not_move() {
        for to in TicketState::ALL {
            assert!(check(Closed, to).is_err(), "closed -> {to}");
            assert!(check(Cancelled, to).is_err(), "cancelled -> {to}");
        }
    }

    #[test]
    fn skipping_steps_is_rejected() {
        assert!(check(New, Scheduled).is_err());
        assert!(check(Triaged, InProgress).is_err());
        assert!(check(Scheduled, Dispatched).is_err());
        assert!(check(Escalated, Escalated).is_err());
    }

    #[test]
    fn names_round_trip() {
        for state in TicketState::ALL {
            assert_eq!(TicketState::parse(state.as_str()), Some(state));
        }
    }
}

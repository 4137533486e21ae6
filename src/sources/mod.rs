//! Event sources at run time: the counters of what each source received, and the poller that
//! fetches `HTTP_POLL` and `MONITOR` sources. The inbound webhook route is in `api::hooks`.

mod consumers;
mod poller;
mod tally;

pub use consumers::Consumers;
pub use poller::Poller;
pub use tally::Tally;

//! Event sources at run time: what every kind of source shares. The inbound webhook route is
//! in `api::hooks`; the counters of what each source received are kept here.

mod tally;

pub use tally::Tally;

//! `NATS`: a durable pull consumer on a JetStream stream. JetStream itself delivers a message
//! again when it was not acknowledged within [`CLAIM_IDLE`] (`ack_wait`), to whichever instance
//! pulls next.

use async_nats::jetstream::{self, consumer::AckPolicy, consumer::PullConsumer};
use futures_util::StreamExt as _;
use tokio::sync::watch;

use super::{BATCH, CLAIM_IDLE, Consumers, Incoming, WAIT};
use crate::domain::source::NatsConfig;
use crate::domain::source::Source;

/// An error of the NATS client, as text.
type NatsError = String;

fn text(e: impl std::fmt::Display) -> NatsError {
    e.to_string()
}

/// The most bytes of a message kept for a rejection.
const EXCERPT: usize = 1024;

impl Consumers {
    /// One connection's life: makes sure the stream and the durable consumer exist, then pulls,
    /// fires and acknowledges.
    pub(super) async fn nats_session(
        &self,
        source: &Source,
        config: &NatsConfig,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<(), NatsError> {
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(std::time::Duration::from_secs(5))
            .connect(config.url.as_str())
            .await
            .map_err(text)?;
        let js = jetstream::new(client);
        let stream = js
            .get_or_create_stream(jetstream::stream::Config {
                name: config.stream.clone(),
                subjects: vec![config.subject.clone()],
                ..Default::default()
            })
            .await
            .map_err(text)?;
        let consumer: PullConsumer = stream
            .get_or_create_consumer(
                &config.durable,
                jetstream::consumer::pull::Config {
                    durable_name: Some(config.durable.clone()),
                    filter_subject: config.subject.clone(),
                    ack_policy: AckPolicy::Explicit,
                    ack_wait: CLAIM_IDLE,
                    ..Default::default()
                },
            )
            .await
            .map_err(text)?;
        while !*stop.borrow() {
            let mut batch =
                consumer.fetch().max_messages(BATCH).expires(WAIT).messages().await.map_err(text)?;
            let mut messages = Vec::new();
            while let Some(message) = batch.next().await {
                messages.push(message.map_err(text)?);
            }
            let incoming: Vec<Incoming> = messages
                .iter()
                .map(|m| {
                    let id = m.info().ok().map(|i| i.stream_sequence.to_string());
                    let payload = &m.payload;
                    let excerpt =
                        String::from_utf8_lossy(&payload[..payload.len().min(EXCERPT)]).into_owned();
                    let document =
                        serde_json::from_slice(payload).map_err(|e| format!("the message is not JSON: {e}"));
                    Incoming { id, document, excerpt }
                })
                .collect();
            let done = self.fire_all(source, incoming).await;
            for (message, done) in messages.iter().zip(done) {
                if done {
                    message.ack().await.map_err(text)?;
                }
            }
        }
        Ok(())
    }
}

//! `AMQP`: a durable RabbitMQ queue (AMQP 0-9-1), consumed with manual acknowledgement and a
//! prefetch of one batch. RabbitMQ gives unacknowledged messages back to the queue when a
//! consumer's connection closes (a killed instance), for the other consumers. A message's
//! `message_id` property, when it has one, makes a second delivery fire nothing.

use std::time::Duration;

use futures_util::StreamExt as _;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use tokio::sync::watch;

use super::{BATCH, Consumers, Incoming, WAIT};
use crate::domain::source::{AmqpConfig, Source};

/// The most bytes of a message kept for a rejection.
const EXCERPT: usize = 1024;

fn text(e: impl std::fmt::Display) -> String {
    e.to_string()
}

impl Consumers {
    /// One connection's life: declares the queue (durable) when missing, then consumes, fires and
    /// acknowledges, a batch at a time.
    pub(super) async fn amqp_session(
        &self,
        source: &Source,
        config: &AmqpConfig,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<(), String> {
        let connection = tokio::time::timeout(
            Duration::from_secs(5),
            lapin::Connection::connect(&config.url, lapin::ConnectionProperties::default()),
        )
        .await
        .map_err(|_| "connecting timed out".to_owned())?
        .map_err(text)?;
        let channel = connection.create_channel().await.map_err(text)?;
        let durable = QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() };
        channel
            .queue_declare(config.queue.as_str().into(), durable, FieldTable::default())
            .await
            .map_err(text)?;
        let prefetch = u16::try_from(BATCH).unwrap_or(u16::MAX);
        channel.basic_qos(prefetch, BasicQosOptions::default()).await.map_err(text)?;
        let mut consumer = channel
            .basic_consume(
                config.queue.as_str().into(),
                self.name.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(text)?;
        while !*stop.borrow() {
            let first = tokio::select! {
                next = consumer.next() => next,
                () = tokio::time::sleep(WAIT) => continue,
                _ = stop.changed() => break,
            };
            let Some(first) = first else { return Err("the broker closed the consumer".into()) };
            let mut deliveries = vec![first.map_err(text)?];
            while deliveries.len() < BATCH {
                match tokio::time::timeout(Duration::from_millis(2), consumer.next()).await {
                    Ok(Some(next)) => deliveries.push(next.map_err(text)?),
                    Ok(None) | Err(_) => break,
                }
            }
            let incoming: Vec<Incoming> = deliveries
                .iter()
                .map(|d| {
                    let id = d
                        .properties
                        .message_id()
                        .as_ref()
                        .map(ToString::to_string)
                        .filter(|id| !id.is_empty());
                    let excerpt = String::from_utf8_lossy(&d.data[..d.data.len().min(EXCERPT)]).into_owned();
                    let document =
                        serde_json::from_slice(&d.data).map_err(|e| format!("the message is not JSON: {e}"));
                    Incoming { id, document, excerpt }
                })
                .collect();
            let done = self.fire_all(source, incoming).await;
            for (delivery, done) in deliveries.iter().zip(done) {
                if done {
                    delivery.ack(BasicAckOptions::default()).await.map_err(text)?;
                }
            }
        }
        Ok(())
    }
}

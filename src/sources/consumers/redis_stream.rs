//! `REDIS_STREAM`: a consumer group on a Redis stream. Entries read and not acknowledged stay
//! pending in the group; `XAUTOCLAIM` takes over those idle for [`CLAIM_IDLE`], whoever read them.

use std::time::{Duration, Instant};

use redis::AsyncCommands as _;
use redis::streams::{
    StreamAutoClaimOptions, StreamAutoClaimReply, StreamId, StreamReadOptions, StreamReadReply,
};
use tokio::sync::watch;

use super::{BATCH, CLAIM_EVERY, CLAIM_IDLE, Consumers, Incoming, WAIT};
use crate::domain::source::Source;
use crate::domain::source::broker::{RedisStreamConfig, entry_document};

impl Consumers {
    /// One connection's life: joins the group (creating the stream and group when missing),
    /// then reads, fires and acknowledges, taking over idle entries now and then.
    pub(super) async fn redis_session(
        &self,
        source: &Source,
        config: &RedisStreamConfig,
        stop: &mut watch::Receiver<bool>,
    ) -> redis::RedisResult<()> {
        let client = redis::Client::open(config.url.as_str())?;
        let mut con = client.get_multiplexed_async_connection().await?;
        con.set_response_timeout(WAIT + Duration::from_secs(5));
        let created: redis::RedisResult<()> =
            con.xgroup_create_mkstream(&config.stream, &config.group, "0").await;
        if let Err(e) = created
            && e.code() != Some("BUSYGROUP")
        {
            return Err(e);
        }
        let block = usize::try_from(WAIT.as_millis()).unwrap_or(1000);
        let read = StreamReadOptions::default().group(&config.group, &self.name).count(BATCH).block(block);
        let mut claimed_at: Option<Instant> = None;
        while !*stop.borrow() {
            if claimed_at.is_none_or(|at| at.elapsed() >= CLAIM_EVERY) {
                let idle = usize::try_from(CLAIM_IDLE.as_millis()).unwrap_or(usize::MAX);
                let options = StreamAutoClaimOptions::default().count(BATCH);
                let claimed: StreamAutoClaimReply = con
                    .xautoclaim_options(&config.stream, &config.group, &self.name, idle, "0-0", options)
                    .await?;
                self.fire_entries(source, config, &mut con, claimed.claimed).await?;
                claimed_at = Some(Instant::now());
            }
            let reply: StreamReadReply = con.xread_options(&[&config.stream], &[">"], &read).await?;
            let entries: Vec<StreamId> = reply.keys.into_iter().flat_map(|k| k.ids).collect();
            self.fire_entries(source, config, &mut con, entries).await?;
        }
        Ok(())
    }

    /// Fires the entries' events and acknowledges those done with.
    async fn fire_entries(
        &self,
        source: &Source,
        config: &RedisStreamConfig,
        con: &mut redis::aio::MultiplexedConnection,
        entries: Vec<StreamId>,
    ) -> redis::RedisResult<()> {
        let incoming: Vec<Incoming> = entries
            .iter()
            .map(|entry| {
                let fields: Vec<(String, String)> = entry
                    .map
                    .iter()
                    .map(|(k, v)| (k.clone(), redis::from_redis_value_ref::<String>(v).unwrap_or_default()))
                    .collect();
                let excerpt = serde_json::Value::Object(
                    fields.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone()))).collect(),
                )
                .to_string();
                Incoming { id: Some(entry.id.clone()), document: entry_document(&fields), excerpt }
            })
            .collect();
        let done = self.fire_all(source, incoming).await;
        let acknowledged: Vec<&str> =
            entries.iter().zip(done).filter(|(_, done)| *done).map(|(e, _)| e.id.as_str()).collect();
        if !acknowledged.is_empty() {
            let _: i64 = con.xack(&config.stream, &config.group, &acknowledged).await?;
        }
        Ok(())
    }
}

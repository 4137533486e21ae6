//! Table definitions shared by both backends (hand-written: JSON columns are TEXT everywhere).

diesel::table! {
    audit_log (id) {
        id -> Text,
        at -> Timestamp,
        actor -> Text,
        action -> Text,
        resource_type -> Text,
        resource_id -> Text,
        before -> Nullable<Text>,
        after -> Nullable<Text>,
    }
}

diesel::table! {
    meta (key) {
        key -> Text,
        value -> Text,
    }
}

diesel::table! {
    triggers (id) {
        id -> Text,
        name -> Text,
        #[sql_name = "type"]
        kind -> Text,
        description -> Nullable<Text>,
        input_schema -> Text,
        example_input -> Text,
        output_schema -> Nullable<Text>,
        example_output -> Nullable<Text>,
        params -> Text,
        enabled -> Bool,
        created -> Timestamp,
        updated -> Timestamp,
        schedule -> Nullable<Text>,
        timezone -> Nullable<Text>,
    }
}

diesel::table! {
    subscriptions (id) {
        id -> Text,
        trigger_id -> Text,
        name -> Text,
        description -> Nullable<Text>,
        #[sql_name = "type"]
        kind -> Text,
        response_deadline -> Text,
        url -> Text,
        dispatch_mode -> Text,
        auth_type -> Text,
        basic_user -> Nullable<Text>,
        basic_password -> Nullable<Text>,
        bearer_token -> Nullable<Text>,
        enabled -> Bool,
        filter -> Nullable<Text>,
        created -> Timestamp,
        updated -> Timestamp,
        disabled_reason -> Nullable<Text>,
        ordering -> Text,
        ordering_key -> Nullable<Text>,
        chain_trigger_id -> Nullable<Text>,
        chain_input_path -> Nullable<Text>,
        rate_limit -> Nullable<Double>,
        max_in_flight -> Nullable<Integer>,
        client_certificate -> Nullable<Text>,
        client_key -> Nullable<Text>,
    }
}

diesel::table! {
    subscription_flow (subscription_id) {
        subscription_id -> Text,
        next_slot -> Timestamp,
        braked_rate -> Nullable<Double>,
        braked_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    flow_permits (subscription_id, owner) {
        subscription_id -> Text,
        owner -> Text,
        permits -> Integer,
    }
}

diesel::table! {
    subscription_secrets (id) {
        id -> Text,
        subscription_id -> Text,
        secret -> Text,
        created -> Timestamp,
        expires_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    api_clients (id) {
        id -> Text,
        name -> Text,
        secret_hash -> Text,
        scopes -> Text,
        created -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    api_tokens (token_hash) {
        token_hash -> Text,
        client_id -> Text,
        scopes -> Text,
        created -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    events (id) {
        id -> Text,
        trigger_id -> Text,
        kind -> Text,
        input -> Text,
        content_json -> Text,
        payload -> Text,
        created -> Timestamp,
        depth -> Integer,
        traceparent -> Nullable<Text>,
    }
}

diesel::table! {
    invocations (id) {
        id -> Text,
        event_id -> Text,
        subscription_id -> Text,
        trigger_id -> Text,
        kind -> Text,
        state -> Text,
        attempts -> Integer,
        next_attempt_at -> Timestamp,
        lease_owner -> Nullable<Text>,
        lease_expires_at -> Nullable<Timestamp>,
        secret -> Text,
        last_error -> Nullable<Text>,
        created -> Timestamp,
        updated -> Timestamp,
        completed -> Nullable<Timestamp>,
        deliver_when_disabled -> Bool,
        output -> Nullable<Text>,
        success_started -> Nullable<Timestamp>,
        success_duration_ms -> Nullable<Integer>,
        success_status -> Nullable<Integer>,
        success_response -> Nullable<Text>,
        order_key -> Nullable<Text>,
        dead_reason -> Nullable<Text>,
    }
}

diesel::table! {
    replays (id) {
        id -> Text,
        invocation_id -> Text,
        replayed_by -> Text,
        replayed_at -> Timestamp,
        forced -> Bool,
    }
}

diesel::table! {
    attempts (id) {
        id -> Text,
        invocation_id -> Text,
        attempt -> Integer,
        started -> Timestamp,
        duration_ms -> Integer,
        status -> Nullable<Integer>,
        response -> Nullable<Text>,
        error -> Nullable<Text>,
    }
}

diesel::table! {
    idempotency_keys (key) {
        key -> Text,
        request_hash -> Text,
        response -> Text,
        created -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    schedule_ticks (trigger_id, tick) {
        trigger_id -> Text,
        tick -> Timestamp,
        event_id -> Nullable<Text>,
        created -> Timestamp,
    }
}

diesel::table! {
    instances (id) {
        id -> Text,
        started -> Timestamp,
        heartbeat_at -> Timestamp,
    }
}

diesel::table! {
    revisions (name) {
        name -> Text,
        value -> BigInt,
    }
}

diesel::table! {
    sources (id) {
        id -> Text,
        name -> Text,
        #[sql_name = "type"]
        kind -> Text,
        trigger_id -> Text,
        enabled -> Bool,
        input_path -> Nullable<Text>,
        routes -> Nullable<Text>,
        config -> Text,
        hook_token -> Nullable<Text>,
        received -> BigInt,
        fired -> BigInt,
        rejected -> BigInt,
        last_event_at -> Nullable<Timestamp>,
        last_error -> Nullable<Text>,
        created -> Timestamp,
        updated -> Timestamp,
        next_poll_at -> Nullable<Timestamp>,
        state -> Nullable<Text>,
        failing_since -> Nullable<Timestamp>,
    }
}

diesel::table! {
    subscription_health (subscription_id) {
        subscription_id -> Text,
        failing_since -> Timestamp,
        failures -> Integer,
        last_error -> Nullable<Text>,
    }
}

diesel::table! {
    source_seen (source_id, item_id) {
        source_id -> Text,
        item_id -> Text,
        seen_at -> Timestamp,
    }
}

diesel::table! {
    source_rejections (id) {
        id -> Text,
        source_id -> Text,
        at -> Timestamp,
        reason -> Text,
        message -> Text,
        excerpt -> Text,
    }
}

diesel::joinable!(invocations -> events (event_id));
diesel::joinable!(attempts -> invocations (invocation_id));
diesel::joinable!(replays -> invocations (invocation_id));
diesel::joinable!(subscriptions -> triggers (trigger_id));
diesel::joinable!(subscription_secrets -> subscriptions (subscription_id));
diesel::joinable!(subscription_flow -> subscriptions (subscription_id));
diesel::joinable!(subscription_health -> subscriptions (subscription_id));
diesel::joinable!(api_tokens -> api_clients (client_id));
diesel::joinable!(source_rejections -> sources (source_id));
diesel::allow_tables_to_appear_in_same_query!(
    meta,
    subscription_flow,
    flow_permits,
    subscription_health,
    triggers,
    subscriptions,
    subscription_secrets,
    api_clients,
    api_tokens,
    events,
    invocations,
    attempts,
    idempotency_keys,
    replays,
    schedule_ticks,
    instances,
    revisions,
    sources,
    source_rejections,
    source_seen
);

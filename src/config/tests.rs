use super::*;

#[test]
fn durations_take_the_documented_units() {
    assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
    assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
    assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
    assert_eq!(parse_duration("12h"), Ok(Duration::from_secs(43200)));
    for bad in ["", "5", "s", "5 weeks", "-1s", "1.5h"] {
        assert!(parse_duration(bad).is_err(), "{bad}");
    }
}

#[test]
fn validation_names_the_offending_key() {
    let raw = RawSettings { listen: "not an address".into(), ..RawSettings::default() };
    let err = Settings::validate(raw).unwrap_err().to_string();
    assert!(err.contains("'listen'"), "{err}");
    let raw = RawSettings { token_ttl: "soon".into(), ..RawSettings::default() };
    assert!(Settings::validate(raw).unwrap_err().to_string().contains("'token_ttl'"));
    let raw = RawSettings { log_format: "xml".into(), ..RawSettings::default() };
    assert!(Settings::validate(raw).unwrap_err().to_string().contains("'log_format'"));
    let raw = RawSettings { retry_schedule: "5s,soon".into(), ..RawSettings::default() };
    assert!(Settings::validate(raw).unwrap_err().to_string().contains("'retry_schedule'"));
    let raw = RawSettings { proxy: Some("ftp://proxy:21".into()), ..RawSettings::default() };
    assert!(Settings::validate(raw).unwrap_err().to_string().contains("'proxy'"));
    let raw = RawSettings { proxy: Some("socks5://127.0.0.1:1080".into()), ..RawSettings::default() };
    assert_eq!(Settings::validate(raw).unwrap().proxy.unwrap().scheme(), "socks5");
    let raw = RawSettings { allowed_target_networks: "10.0.0.0/33".into(), ..RawSettings::default() };
    assert!(Settings::validate(raw).unwrap_err().to_string().contains("'allowed_target_networks'"));
}

#[test]
fn the_default_retry_schedule_is_svix_like() {
    let s = Settings::validate(RawSettings::default()).unwrap();
    let secs: Vec<u64> = s.retry_schedule.iter().map(Duration::as_secs).collect();
    assert_eq!(secs, vec![5, 300, 1800, 7200, 18000, 36000, 36000]);
    let raw =
        RawSettings { allowed_target_networks: "127.0.0.1, 10.0.0.0/8".into(), ..RawSettings::default() };
    assert_eq!(Settings::validate(raw).unwrap().allowed_target_networks.len(), 2);
}

#[test]
fn a_toml_file_overrides_defaults_and_rejects_unknown_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hookgate.toml");
    std::fs::write(&path, "listen = \"127.0.0.1:9999\"\ntoken_ttl = \"1h\"\n").unwrap();
    let raw: RawSettings = Figment::from(Serialized::defaults(RawSettings::default()))
        .merge(Toml::file(&path))
        .extract()
        .unwrap();
    let s = Settings::validate(raw).unwrap();
    assert_eq!(s.listen.port(), 9999);
    assert_eq!(s.token_ttl, Duration::from_secs(3600));
    std::fs::write(&path, "listne = \"x\"\n").unwrap();
    let err = Figment::from(Serialized::defaults(RawSettings::default()))
        .merge(Toml::file(&path))
        .extract::<RawSettings>()
        .unwrap_err();
    assert!(err.to_string().contains("listne"), "{err}");
}

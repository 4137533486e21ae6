use serde_json::{Value, json};

use super::Filter;

fn identity_changed() -> Value {
    json!({
        "identity": {"type": "IDENTITY", "id": "2c91808568c529c60168cca6f90c1313", "name": "john.doe"},
        "changes": [
            {"attribute": "department", "oldValue": "sales", "newValue": "US Sales Support"},
            {"attribute": "manager", "oldValue": null, "newValue": "jane"},
            {"attribute": "cloudLifecycleState", "oldValue": "active", "newValue": "inactive"}
        ],
        "warnings": ["Account skipped", "Other"],
        "attributes": {"created": "2020-05-01T10:00:00.000Z", "count": 7, "firstname": "John"}
    })
}

fn matches(filter: &str) -> bool {
    Filter::parse(filter).unwrap_or_else(|e| panic!("{filter}: {e}")).matches(&identity_changed())
}

#[test]
fn root_filter_tests_the_whole_object() {
    assert!(matches(r#"$[?($.identity.name == "john.doe")]"#));
    assert!(!matches(r#"$[?($.identity.name == "jane.doe")]"#));
}

#[test]
fn a_filter_without_the_leading_dollar_reads_as_rooted() {
    assert!(matches(r#"[?($.identity.id == "2c91808568c529c60168cca6f90c1313")]"#));
}

#[test]
fn equality_and_inequality() {
    assert!(matches("$.changes[?(@.attribute == 'department')]"));
    assert!(matches("$.changes[?(@.attribute != 'department')]"));
    assert!(!matches("$.changes[?(@.attribute == 'title')]"));
}

#[test]
fn ordering_operators_compare_numbers_and_strings() {
    assert!(matches("$[?($.attributes.count > 5)]"));
    assert!(matches("$[?($.attributes.count >= 7)]"));
    assert!(!matches("$[?($.attributes.count < 7)]"));
    assert!(matches("$[?($.attributes.count <= 7)]"));
    assert!(matches("$[?($.attributes.created > '2020-04-27T16:48:33.200Z')]"));
}

#[test]
fn regex_matches_the_whole_string_and_honours_flags() {
    assert!(matches("$.changes[?(@.newValue =~ /us.*support/i)]"));
    assert!(!matches("$.changes[?(@.newValue =~ /us.*support/)]"));
    assert!(!matches("$.changes[?(@.newValue =~ /Sales/)]"));
}

#[test]
fn in_and_nin() {
    assert!(matches("$.changes[?(@.attribute in ['department','title'])]"));
    assert!(!matches("$.changes[?(@.attribute in ['title'])]"));
    assert!(matches("$.changes[?(@.attribute nin ['department','manager'])]"));
    assert!(!matches("$.changes[?(@.attribute nin ['department','manager','cloudLifecycleState'])]"));
}

#[test]
fn subsetof_anyof_noneof() {
    assert!(matches("$[?($.warnings anyof ['Account skipped','Invalid account'])]"));
    assert!(!matches("$[?($.warnings anyof ['Invalid account'])]"));
    assert!(matches("$[?($.warnings subsetof ['Account skipped','Other','More'])]"));
    assert!(!matches("$[?($.warnings subsetof ['Account skipped'])]"));
    assert!(matches("$[?($.warnings noneof ['Invalid account'])]"));
    assert!(!matches("$[?($.warnings noneof ['Other'])]"));
}

#[test]
fn size_and_empty() {
    assert!(matches("$[?($.changes size 3)]"));
    assert!(!matches("$[?($.changes size 2)]"));
    assert!(matches("$[?($.identity.name size 8)]"));
    assert!(matches("$[?($.warnings empty false)]"));
    assert!(!matches("$[?($.warnings empty true)]"));
}

#[test]
fn contains_is_a_case_sensitive_substring_or_membership_test() {
    assert!(matches(r#"$[?($.identity.name contains "john")]"#));
    assert!(!matches(r#"$[?($.identity.name contains "John")]"#));
    assert!(matches("$[?($.warnings contains 'Other')]"));
}

#[test]
fn and_or_not() {
    assert!(matches("$.changes[?(@.attribute == 'department' && @.oldValue == 'sales')]"));
    assert!(!matches("$.changes[?(@.attribute == 'department' && @.oldValue == 'hr')]"));
    assert!(matches("$.changes[?(@.attribute == 'x' || @.oldValue == 'active')]"));
    assert!(matches("$.changes[?(!(@.attribute == 'department'))]"));
    assert!(matches("$.identity[?(!@.alternateEmail)]"));
    assert!(!matches("$.identity[?(!@.name)]"));
}

#[test]
fn length_function() {
    assert!(matches("$[?($.changes.length() >= 3)]"));
    assert!(!matches("$[?($.changes.length() > 3)]"));
}

#[test]
fn wildcard_descendant_slice_and_union() {
    assert!(matches("$.changes[*].attribute"));
    assert!(matches("$..newValue"));
    assert!(matches("$..[?(@.attribute == 'manager')]"));
    assert!(matches("$.changes[1:2]"));
    assert!(matches("$.changes[-1:]"));
    assert!(!matches("$.changes[5:]"));
    assert!(matches("$.changes[0,2]"));
    assert!(matches("$['identity','missing']"));
    assert!(matches("$.identity.*"));
}

#[test]
fn missing_paths_select_nothing() {
    assert!(!matches("$.nope"));
    assert!(!matches("$[?($.nope == 'x')]"));
    assert!(matches("$[?($.nope != 'x')]"));
}

#[test]
fn invalid_expressions_are_refused_with_a_position() {
    for bad in [
        "",
        "identity",
        "$[?(@.a == )]",
        "$[?(@.a ==== 1)]",
        "$.a[",
        "$[?(@.a like 'x')]",
        "$.a.concat()",
        "$[?(@.a =~ /(/)]",
    ] {
        let err = Filter::parse(bad).expect_err(bad);
        assert!(!err.message.is_empty(), "{bad}");
    }
}

#[test]
fn validation_reports_each_part_separately() {
    let input = json!({"identityId": "201327fda1c44704ac01181e963d463c"});
    let ok = Filter::validate(r#"$[?($.identityId == "201327fda1c44704ac01181e963d463c")]"#, &input);
    assert!(ok.valid_json_path && ok.path_exists && ok.valid);
    let other = Filter::validate(r#"$[?($.identityId == "someone-else")]"#, &input);
    assert!(other.valid_json_path && other.path_exists && !other.valid);
    let missing = Filter::validate(r#"$[?($.nothing == "x")]"#, &input);
    assert!(missing.valid_json_path && !missing.path_exists && !missing.valid);
    let broken = Filter::validate("$[?(", &input);
    assert!(!broken.valid_json_path && !broken.path_exists && !broken.valid);
}

//! RFC 6902 JSON Patch limited to a resource's patchable fields.

use serde_json::Value;

use super::error::ApiError;

/// Applies `ops` to `doc` when every `path` (and `from`) starts with a field of `patchable`.
pub fn apply(mut doc: Value, ops: Value, patchable: &[&str]) -> Result<Value, ApiError> {
    let Value::Array(list) = &ops else {
        return Err(ApiError::bad_request(
            "the body must be a JSON Patch array such as [{\"op\":\"replace\",\"path\":\"/name\",\"value\":\"x\"}]",
        ));
    };
    if list.is_empty() {
        return Err(ApiError::bad_request("the JSON Patch array is empty"));
    }
    for op in list {
        for key in ["path", "from"] {
            let Some(pointer) = op.get(key) else { continue };
            let field = pointer
                .as_str()
                .and_then(|p| p.strip_prefix('/'))
                .map(|p| p.split('/').next().unwrap_or_default())
                .ok_or_else(|| {
                    ApiError::bad_request(format!("'{key}' must be a JSON Pointer such as /name"))
                })?;
            if !patchable.contains(&field) {
                return Err(ApiError::bad_request(format!(
                    "'{field}' cannot be patched; patchable fields: {}",
                    patchable.join(", ")
                )));
            }
        }
    }
    let patch: json_patch::Patch =
        serde_json::from_value(ops).map_err(|e| ApiError::bad_request(format!("invalid JSON Patch: {e}")))?;
    json_patch::patch(&mut doc, &patch)
        .map_err(|e| ApiError::bad_request(format!("the patch cannot be applied: {e}")))?;
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn patches_only_the_allowed_fields() {
        let doc = json!({"id": "1", "name": "a", "enabled": true});
        let out = apply(
            doc.clone(),
            json!([{"op": "replace", "path": "/enabled", "value": false}]),
            &["name", "enabled"],
        )
        .unwrap();
        assert_eq!(out["enabled"], false);
        assert!(
            apply(doc.clone(), json!([{"op": "replace", "path": "/id", "value": "2"}]), &["name"]).is_err()
        );
        assert!(
            apply(doc.clone(), json!([{"op": "copy", "from": "/id", "path": "/name"}]), &["name"]).is_err()
        );
        assert!(apply(doc, json!({"op": "replace"}), &["name"]).is_err());
    }
}

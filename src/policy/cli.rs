//! `portcullis policy eval` (placeholder until the engine lands).
pub fn eval_cli(_policy_text: &str, _input_json: &str) -> Result<String, String> {
    Err("the policy engine is not merged yet".into())
}

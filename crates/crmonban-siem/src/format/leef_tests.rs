use super::*;

#[test]
fn header_declares_the_tab_and_values_cannot_hold_one() {
    let origin = Origin {
        hostname: "web1".to_owned(),
        app_name: "crmonband".to_owned(),
        procid: 7,
        version: "1.0|rc".to_owned(),
    };
    let mut event = SiemEvent::new(Action::AttackDetected, 1_795_623_599_123_456);
    event.reason = "x\tsrc=6.6.6.6\nnext\\line=|".to_owned();
    let line = encode(&event, &origin);
    assert!(
        line.starts_with("LEEF:2.0|crmonban|crmonban|1.0#174rc|attack-detected|x09|devTime=Nov 25 2026 16:19:59.123 GMT\t"),
        "{line}"
    );
    assert!(
        line.contains("\treason=x#011src=6.6.6.6#012next\\line=|\t"),
        "{line}"
    );
    assert!(line.contains("\tsev=5\t"), "{line}");
}

//! [`RecordingBackend`]: the [`FirewallBackend`] contract kept in memory, for testing the
//! engine without a kernel. It records every call, can be told to refuse the next ones, and
//! expires elements by the clock like the kernel does.

use std::collections::BTreeMap;

use crmonban_core::Target;

use crate::{
    ApplyReport, Change, ChangeSet, Element, Expiry, FirewallBackend, FirewallError, now_unix,
};

/// One call the backend received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    /// [`FirewallBackend::ensure_layout`].
    EnsureLayout,
    /// [`FirewallBackend::apply`], with the change set it was given.
    Apply(ChangeSet),
    /// [`FirewallBackend::replace_all`], with the elements it was given.
    ReplaceAll(Vec<Element>),
    /// [`FirewallBackend::teardown`].
    Teardown,
}

/// In-memory backend; see the module docs.
#[derive(Debug, Default)]
pub struct RecordingBackend {
    present: bool,
    elements: BTreeMap<Target, Expiry>,
    calls: Vec<Call>,
    refuse: Option<FirewallError>,
}

impl RecordingBackend {
    /// A backend with no table yet: changes fail with [`FirewallError::LayoutMissing`] until
    /// [`FirewallBackend::ensure_layout`] or [`FirewallBackend::replace_all`] creates it.
    pub fn new() -> RecordingBackend {
        RecordingBackend::default()
    }

    /// Every call so far, oldest first.
    pub fn calls(&self) -> &[Call] {
        &self.calls
    }

    /// Makes every following change fail with `error` (None: accept again).
    pub fn refuse_with(&mut self, error: Option<FirewallError>) {
        self.refuse = error;
    }

    /// Simulates someone deleting the table (`nft flush ruleset`).
    pub fn simulate_flush(&mut self) {
        self.present = false;
        self.elements.clear();
    }

    /// True when `target` is present and not expired.
    pub fn contains(&self, target: &Target) -> bool {
        let now = now_unix();
        self.elements.get(target).is_some_and(|e| !e.is_past(now))
    }

    fn check(&self) -> Result<(), FirewallError> {
        match &self.refuse {
            Some(e) => Err(e.clone()),
            None if !self.present => Err(FirewallError::LayoutMissing(
                "table inet crmonban does not exist".into(),
            )),
            None => Ok(()),
        }
    }
}

impl FirewallBackend for RecordingBackend {
    fn ensure_layout(&mut self) -> Result<(), FirewallError> {
        self.calls.push(Call::EnsureLayout);
        if let Some(e) = &self.refuse {
            return Err(e.clone());
        }
        self.present = true;
        Ok(())
    }

    fn apply(&mut self, changes: &ChangeSet) -> Result<ApplyReport, FirewallError> {
        self.calls.push(Call::Apply(changes.clone()));
        self.check()?;
        let mut report = ApplyReport::default();
        let now = now_unix();
        for change in &changes.changes {
            match change {
                Change::Add(e) if e.expiry.is_past(now) => report.skipped_expired += 1,
                Change::Add(e) => {
                    report.added += 1;
                    self.elements.insert(e.target, e.expiry);
                }
                Change::Remove(t) => {
                    report.removed += 1;
                    self.elements.remove(t);
                }
            }
        }
        report.transactions = usize::from(!changes.is_empty());
        Ok(report)
    }

    fn replace_all(&mut self, elements: &[Element]) -> Result<ApplyReport, FirewallError> {
        self.calls.push(Call::ReplaceAll(elements.to_vec()));
        if let Some(e) = &self.refuse {
            return Err(e.clone());
        }
        self.present = true;
        let now = now_unix();
        self.elements = elements
            .iter()
            .filter(|e| !e.expiry.is_past(now))
            .map(|e| (e.target, e.expiry))
            .collect();
        Ok(ApplyReport {
            added: self.elements.len(),
            transactions: 1,
            ..ApplyReport::default()
        })
    }

    fn layout_present(&mut self) -> Result<bool, FirewallError> {
        Ok(self.present)
    }

    fn list(&mut self) -> Result<Vec<Element>, FirewallError> {
        self.check()?;
        let now = now_unix();
        Ok(self
            .elements
            .iter()
            .filter(|(_, e)| !e.is_past(now))
            .map(|(t, e)| Element {
                target: *t,
                expiry: *e,
            })
            .collect())
    }

    fn teardown(&mut self) -> Result<(), FirewallError> {
        self.calls.push(Call::Teardown);
        self.present = false;
        self.elements.clear();
        Ok(())
    }

    fn describe(&self) -> String {
        "in-memory recording backend".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_contract_in_memory() {
        let t = Target::parse("192.0.2.1").unwrap();
        let mut fw = RecordingBackend::new();
        let mut changes = ChangeSet::new();
        changes.add(Element::permanent(t));
        assert!(matches!(
            fw.apply(&changes),
            Err(FirewallError::LayoutMissing(_))
        ));
        fw.ensure_layout().unwrap();
        fw.apply(&changes).unwrap();
        assert!(fw.contains(&t));
        fw.refuse_with(Some(FirewallError::Unavailable("test".into())));
        assert!(fw.apply(ChangeSet::new().remove(t)).is_err());
        assert!(fw.contains(&t), "a refused change changes nothing");
        fw.refuse_with(None);
        fw.apply(ChangeSet::new().remove(t)).unwrap();
        assert!(!fw.contains(&t));
        assert_eq!(fw.calls().len(), 4 + 1);
    }
}

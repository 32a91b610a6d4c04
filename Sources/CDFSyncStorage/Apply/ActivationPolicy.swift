import CDFSyncCore

/// What a pipeline's activation gives a participant, decided inside the writer's transaction from what the panel and
/// the invitation ledger hold at that row (docs/activation.md) — the neighbour of ``AdmissionPolicy``.
///
/// A decision is made when a row of the pipeline **inserts** a participant, **links** a new source key to one, or
/// **updates** one who was not eligible before the row and is after it (opted in again, gained an email, now meets
/// the conditions). A participant the activation never saw change is never swept in. Per decision:
/// - not eligible (``ActivationRule``): counted by reason (insert and link only; an update that leaves someone
///   ineligible is no decision);
/// - the ledger already holds (participant, target) as queued or sent: `already invited`; as held: `already held`;
/// - otherwise a ledger entry is written in this transaction — `queued`, with the pipeline's next invitation
///   sequence in its outbox, when the activation stands confirmed (or needs no confirmation), else `held`.
///
/// The ledger is keyed by the resolved participant, so linked keys, replays, refreshes and a rerun after a crash all
/// find the first decision. Not thread-safe; one per write transaction, on its thread.
struct ActivationPolicy {
    /// Why a decision is being made.
    enum Trigger: Equatable {
        case insert, link
        /// An update; `wasEligible` is what the rule said of the record before it.
        case update(wasEligible: Bool)
    }

    private let store: PanelStore
    private let txn: WriteTransaction
    let settings: PanelStore.ActivationSettings
    let pipeline: String
    let standing: PanelStore.ActivationStanding
    private let startSeq: UInt64
    private var seq: UInt64
    private let decidedAt: String
    private var decompressor: ZstdDecompressor?
    private(set) var outcome = PanelStore.ActivationOutcome()

    init(store: PanelStore, txn: WriteTransaction, settings: PanelStore.ActivationSettings, pipeline: String) throws {
        self.store = store
        self.txn = txn
        self.settings = settings
        self.pipeline = pipeline
        standing = try store.activationStanding(txn, pipeline: pipeline, settings: settings)
        startSeq = try store.readCounter(txn, PanelStore.ActivationKey.queuedSeq(pipeline)) ?? 0
        seq = startSeq
        decidedAt = PanelStore.isoNow()
    }

    /// The stored record of participant `pid` (decompressed), or nil when the panel has none.
    mutating func currentRecord(_ pid: UInt64) throws -> [UInt8]? {
        try withBE(pid) { key in
            try txn.withValue(store.panel, key: key) { value in
                guard let value else { return nil }
                return try store.decodePanelValue(pid: pid, value: value, decompressor: &decompressor, txn).record
            }
        }
    }

    /// Whether participant `pid` is eligible as the panel holds them now (before the row about to be written).
    mutating func isEligible(_ pid: UInt64) throws -> Bool {
        guard let record = try currentRecord(pid) else { return false }
        return settings.rule.ineligibility(of: record) == nil
    }

    /// Decides for participant `pid` after the row wrote its record: `merged` when the participant's record is the
    /// merge of several source keys' (docs/pipelines.md), else the row's `record`; `identKey` is the row's source key
    /// (scope, NUL, external id) and `version` its version.
    mutating func decide(
        pid: UInt64, record: UnsafeRawBufferPointer, merged: [UInt8]?, trigger: Trigger, identKey: UnsafeRawBufferPointer,
        version: Int64
    ) throws {
        if let merged {
            try merged.withUnsafeBytes {
                try decide(pid: pid, record: $0, trigger: trigger, identKey: identKey, version: version)
            }
        } else {
            try decide(pid: pid, record: record, trigger: trigger, identKey: identKey, version: version)
        }
    }

    /// ``decide(pid:record:merged:trigger:identKey:version:)`` with the participant's record as written.
    private mutating func decide(
        pid: UInt64, record: UnsafeRawBufferPointer, trigger: Trigger, identKey: UnsafeRawBufferPointer, version: Int64
    ) throws {
        if case .update(let wasEligible) = trigger, wasEligible { return }
        if let reason = settings.rule.ineligibility(of: record) {
            if case .update = trigger { return }
            outcome.notEligible[settings.rule.describe(reason), default: 0] += 1
            return
        }
        let target = settings.target.key
        let key = PanelStore.ActivationKey.ledger(pid, target)
        let existing = try key.withUnsafeBytes { k in
            try txn.withValue(store.invitationsDB, key: k) { v in v.flatMap { PanelStore.Invitation.state(of: $0) } }
        }
        switch existing {
        case .queued?, .sent?:
            outcome.alreadyInvited += 1
            return
        case .held?:
            outcome.alreadyHeld += 1
            return
        case .withdrawn?, .dropped?, nil:
            break
        }
        let sep = identKey.firstIndex(of: 0) ?? identKey.count
        var entry = PanelStore.Invitation(
            state: .held, pipeline: pipeline, target: target, participantID: pid,
            scope: String(decoding: identKey[..<sep], as: UTF8.self),
            externalID: sep < identKey.count ? String(decoding: identKey[(sep + 1)...], as: UTF8.self) : "",
            commitVersion: version, runID: settings.runID, decidedAt: decidedAt)
        if standing.sends {
            entry.state = .queued
            entry.seq = try enqueue(pid: pid, target: target)
            outcome.queued += 1
        } else {
            try txn.put(store.invitationsDB, key: PanelStore.ActivationKey.held(pipeline, pid, target), value: [])
            outcome.held += 1
        }
        try txn.put(store.invitationsDB, key: key, value: entry.json())
    }

    /// Puts (`pid`, `target`) in the pipeline's invitation outbox under its next sequence; returns the sequence.
    mutating func enqueue(pid: UInt64, target: String) throws -> UInt64 {
        seq += 1
        try txn.put(store.invitationQueue, key: PanelStore.ActivationKey.sequenced(pipeline, seq),
            value: bytesBE(pid) + Array(target.utf8))
        return seq
    }

    /// Moves the pipeline's invitation sequence (when anything was queued).
    func finish() throws {
        guard seq != startSeq else { return }
        try txn.put(store.meta, key: PanelStore.ActivationKey.queuedSeq(pipeline), value: bytesBE(seq))
    }
}

import CDFSyncCore
import Foundation
import Synchronization

/// The invitation ledger: what each pipeline's activation decided for whom (docs/activation.md).
///
/// Layout (the `invitations` database):
/// - `L` + participant id (8 bytes BE) + target key (`study:S-42`) → the ``PanelStore/Invitation`` as JSON. One
///   entry per (participant, target), ever: the key is the *resolved* participant, so two source keys linked into
///   one participant share it, and a second decision finds the first.
/// - `H` + pipeline + NUL + participant id + target key → empty: the entries of a pipeline that are held (waiting
///   for a confirmation), so that confirming releases them without a scan of the ledger.
///
/// Each pipeline's invitation outbox (`invitation_queue`) holds pipeline + NUL + sequence → participant + target,
/// written in the transaction that queued the entry; delivery (PanelStore+InvitationDelivery.swift) consumes it.
/// `meta` holds per pipeline: `activation/confirmation/<p>` (who confirmed what, or deactivated), `activation/
/// settings/<p>` (the settings its last run used, for `status`), `invite_seq/<p>` and `invite_delivered/<p>` (the
/// last sequence queued and delivered).
extension PanelStore {
    // MARK: Types

    /// What apply needs of a pipeline's activation: the compiled rule and the hash of the settings an operator
    /// confirms (activation, mapping, consent and source).
    public struct ActivationSettings: Sendable, Equatable {
        public var rule: ActivationRule
        /// Hex SHA-256 of the settings (computed by the engine).
        public var settingsHash: String
        /// The run deciding (recorded in the ledger's entries).
        public var runID: UInt64?

        public init(rule: ActivationRule, settingsHash: String, runID: UInt64? = nil) {
            self.rule = rule
            self.settingsHash = settingsHash
            self.runID = runID
        }

        public var target: ActivationTarget { rule.target }
    }

    /// What an activation decided in one apply (or a run), beside the row counts.
    public struct ActivationOutcome: Sendable, Equatable {
        /// New invitations (or pool additions) queued for delivery.
        public var queued = 0
        /// New ones held: the activation is not confirmed (or its confirmation is stale, or it was deactivated).
        public var held = 0
        /// Eligible participants the ledger already holds as queued or sent for the target.
        public var alreadyInvited = 0
        /// Eligible participants already held for the target.
        public var alreadyHeld = 0
        /// Participants decided on and not eligible, by reason (`not opted in`, `no email or phone`,
        /// `eligibility: country in [GB]`).
        public var notEligible: [String: Int] = [:]

        public init() {}

        public var isEmpty: Bool { self == ActivationOutcome() }

        public static func += (a: inout ActivationOutcome, b: ActivationOutcome) {
            a.queued += b.queued
            a.held += b.held
            a.alreadyInvited += b.alreadyInvited
            a.alreadyHeld += b.alreadyHeld
            for (k, v) in b.notEligible { a.notEligible[k, default: 0] += v }
        }
    }

    /// One entry of the invitation ledger.
    public struct Invitation: Sendable, Equatable, Codable {
        public enum State: String, Sendable, Codable, CaseIterable {
            /// Eligible, waiting for a confirmation of the activation; not sent, not consumed.
            case held
            /// In the pipeline's invitation outbox: the next delivery sends it (unless the participant withdrew).
            case queued
            /// Written to an invitation segment (`file`): sent, once and for all.
            case sent
            /// Not sent: the participant withdrew (or lost every contact) before it went out. A later change that
            /// makes them eligible decides anew.
            case withdrawn
            /// Not sent: held, and no longer eligible (or for another target) when the activation was confirmed.
            case dropped
        }

        public var state: State
        public var pipeline: String
        /// The target's key (`study:S-42`).
        public var target: String
        public var participantID: UInt64
        /// The source key whose change decided it.
        public var scope: String
        public var externalID: String
        /// The version of that change.
        public var commitVersion: Int64
        public var runID: UInt64?
        /// When it was decided (UTC, ISO 8601).
        public var decidedAt: String
        /// The pipeline's invitation sequence it was queued under (queued, sent).
        public var seq: UInt64?
        /// The segment file that holds it (sent) and when it was written.
        public var file: String?
        public var sentAt: String?
        /// Why it was withdrawn or dropped.
        public var reason: String?

        enum CodingKeys: String, CodingKey {
            case state, pipeline, target, participantID = "participant_id", scope, externalID = "external_id"
            case commitVersion = "commit_version", runID = "run_id", decidedAt = "decided_at", seq, file
            case sentAt = "sent_at", reason
        }

        public init(state: State, pipeline: String, target: String, participantID: UInt64, scope: String,
                    externalID: String, commitVersion: Int64, runID: UInt64?, decidedAt: String) {
            self.state = state
            self.pipeline = pipeline
            self.target = target
            self.participantID = participantID
            self.scope = scope
            self.externalID = externalID
            self.commitVersion = commitVersion
            self.runID = runID
            self.decidedAt = decidedAt
        }

        /// The entry as stored: JSON with `state` first (``state(of:)`` reads it without decoding the rest), every
        /// key present.
        public func json() -> [UInt8] {
            var w = JSONWriter(reservingCapacity: 256)
            w.beginObject()
            w.key("state"); w.string(state.rawValue)
            w.key("pipeline"); w.string(pipeline)
            w.key("target"); w.string(target)
            w.key("participant_id"); w.uint(participantID)
            w.key("scope"); w.string(scope)
            w.key("external_id"); w.string(externalID)
            w.key("commit_version"); w.int(commitVersion)
            w.key("run_id"); if let runID { w.uint(runID) } else { w.null() }
            w.key("decided_at"); w.string(decidedAt)
            w.key("seq"); if let seq { w.uint(seq) } else { w.null() }
            w.key("file"); w.string(file)
            w.key("sent_at"); w.string(sentAt)
            w.key("reason"); w.string(reason)
            w.endObject()
            return w.bytes
        }

        static func decode(_ bytes: [UInt8]) throws -> Invitation {
            try bytes.withUnsafeBytes { try decode($0) }
        }

        /// Reads an entry as ``json()`` writes it (a flat object; ``FlatJSON``, not `JSONDecoder`: delivery decodes
        /// one per invitation).
        static func decode(_ bytes: UnsafeRawBufferPointer) throws -> Invitation {
            func damaged(_ why: String) -> StorageError {
                StorageError(code: .corrupted, message: "an invitation ledger entry does not decode (\(why))")
            }
            guard let members = FlatJSON.members(bytes) else { throw damaged("not a JSON object") }
            // One pass over the members, no dictionary (a later duplicate key wins, as it would in one).
            var state: State?, pipeline: String?, target: String?, pid: UInt64?, scope: String?, externalID: String?
            var version: Int64?, runID: UInt64?, decidedAt: String?, seq: UInt64?, file: String?, sentAt: String?
            var reason: String?
            for (key, value) in members {
                var text: String? { if case .string(let s) = value { s } else { nil } }
                var number: String? { if case .number(let n) = value { n } else { nil } }
                switch key {
                case "state": state = text.flatMap(State.init(rawValue:))
                case "pipeline": pipeline = text
                case "target": target = text
                case "participant_id": pid = number.flatMap { UInt64($0) }
                case "scope": scope = text
                case "external_id": externalID = text
                case "commit_version": version = number.flatMap { Int64($0) }
                case "run_id": runID = number.flatMap { UInt64($0) }
                case "decided_at": decidedAt = text
                case "seq": seq = number.flatMap { UInt64($0) }
                case "file": file = text
                case "sent_at": sentAt = text
                case "reason": reason = text
                default: break
                }
            }
            guard let state, let pipeline, let target, let pid, let scope, let externalID, let version, let decidedAt
            else { throw damaged("a required key is missing or of the wrong kind") }
            var entry = Invitation(state: state, pipeline: pipeline, target: target, participantID: pid, scope: scope,
                externalID: externalID, commitVersion: version, runID: runID, decidedAt: decidedAt)
            entry.seq = seq
            entry.file = file
            entry.sentAt = sentAt
            entry.reason = reason
            return entry
        }

        /// The state of a stored entry, read from its first key.
        static func state(of value: UnsafeRawBufferPointer) -> State? {
            let prefix = Array(#"{"state":""#.utf8)
            guard value.count > prefix.count, value.starts(with: prefix) else { return nil }
            guard let end = value[prefix.count...].firstIndex(of: UInt8(ascii: "\"")) else { return nil }
            return State(rawValue: String(decoding: value[prefix.count..<end], as: UTF8.self))
        }
    }

    /// An operator's decision about a pipeline's activation (`cdfsync pipeline activate` / `deactivate`).
    public struct ActivationConfirmation: Sendable, Equatable, Codable {
        public enum State: String, Sendable, Codable { case confirmed, deactivated }
        public var state: State
        /// The settings confirmed (hex SHA-256; see ``ActivationSettings/settingsHash``) and their target's key.
        public var settingsHash: String
        public var target: String
        /// Who (the OS user), where and when (UTC, ISO 8601).
        public var by: String
        public var host: String
        public var at: String

        enum CodingKeys: String, CodingKey {
            case state, settingsHash = "settings_hash", target, by, host, at
        }

        public init(state: State, settingsHash: String, target: String, by: String, host: String, at: String) {
            self.state = state
            self.settingsHash = settingsHash
            self.target = target
            self.by = by
            self.host = host
            self.at = at
        }
    }

    /// Whether a pipeline's invitations go out now, and why (or why not).
    public enum ActivationStanding: Sendable, Equatable {
        /// A pool: no confirmation needed.
        case notRequired
        /// Confirmed for exactly these settings.
        case confirmed(ActivationConfirmation)
        /// Never confirmed: invitations are held.
        case unconfirmed
        /// Confirmed for other settings (the activation, mapping, consent or source changed): held.
        case stale(ActivationConfirmation)
        /// Deactivated: held.
        case deactivated(ActivationConfirmation)

        /// Whether decisions are queued for delivery (else held).
        public var sends: Bool {
            switch self {
            case .notRequired, .confirmed: true
            case .unconfirmed, .stale, .deactivated: false
            }
        }

        /// The word `status` and the run records use: `not_required`, `confirmed`, `unconfirmed`, `stale`,
        /// `deactivated`.
        public var name: String {
            switch self {
            case .notRequired: "not_required"
            case .confirmed: "confirmed"
            case .unconfirmed: "unconfirmed"
            case .stale: "stale"
            case .deactivated: "deactivated"
            }
        }

        /// What the standing means, in a phrase.
        public var description: String {
            switch self {
            case .notRequired: "no confirmation needed (a pool contacts nobody)"
            case .confirmed(let c): "confirmed by \(c.by) at \(c.at)"
            case .unconfirmed: "not confirmed: invitations are held until `cdfsync pipeline activate`"
            case .stale(let c):
                "confirmation by \(c.by) at \(c.at) is stale (the activation, mapping, consent or source changed since): "
                    + "invitations are held until `cdfsync pipeline activate`"
            case .deactivated(let c):
                "deactivated by \(c.by) at \(c.at): invitations are held until `cdfsync pipeline activate`"
            }
        }
    }

    /// The settings a pipeline's runs last used (`status` compares them with the confirmation).
    public struct NotedActivation: Sendable, Equatable, Codable {
        public var settingsHash: String
        public var target: String

        enum CodingKeys: String, CodingKey { case settingsHash = "settings_hash", target }

        public init(settingsHash: String, target: String) {
            self.settingsHash = settingsHash
            self.target = target
        }
    }

    // MARK: Keys

    enum ActivationKey {
        static func confirmation(_ pipeline: String) -> [UInt8] { Array("activation/confirmation/\(pipeline)".utf8) }
        static func settings(_ pipeline: String) -> [UInt8] { Array("activation/settings/\(pipeline)".utf8) }
        static func directory(_ pipeline: String) -> [UInt8] { Array("activation/directory/\(pipeline)".utf8) }
        static func queuedSeq(_ pipeline: String) -> [UInt8] { Array("invite_seq/\(pipeline)".utf8) }
        static func deliveredSeq(_ pipeline: String) -> [UInt8] { Array("invite_delivered/\(pipeline)".utf8) }
        static func webhookCursor(_ pipeline: String, _ urlHash: UInt64) -> [UInt8] {
            Array("invite_webhook/\(pipeline)/\(String(urlHash, radix: 16))".utf8)
        }

        /// `L` + participant + target.
        static func ledger(_ pid: UInt64, _ target: String) -> [UInt8] {
            [UInt8(ascii: "L")] + bytesBE(pid) + Array(target.utf8)
        }

        /// `H` + pipeline + NUL + participant + target.
        static func held(_ pipeline: String, _ pid: UInt64, _ target: String) -> [UInt8] {
            heldPrefix(pipeline) + bytesBE(pid) + Array(target.utf8)
        }

        static func heldPrefix(_ pipeline: String) -> [UInt8] { [UInt8(ascii: "H")] + Array(pipeline.utf8) + [0] }

        /// Pipeline + NUL (+ sequence): the pipeline's part of the queue and of its segments.
        static func pipelinePrefix(_ pipeline: String) -> [UInt8] { Array(pipeline.utf8) + [0] }
        static func sequenced(_ pipeline: String, _ seq: UInt64) -> [UInt8] { pipelinePrefix(pipeline) + bytesBE(seq) }
    }

    static func isoNow() -> String { ISO8601DateFormatter().string(from: Date()) }

    // MARK: Standing

    /// Whether `settings`' invitations go out now for `pipeline` (read in `txn`).
    func activationStanding(_ txn: some ReadableTransaction, pipeline: String, settings: ActivationSettings?)
        throws -> ActivationStanding
    {
        let confirmation = try activationConfirmation(txn, pipeline: pipeline)
        if let confirmation, confirmation.state == .deactivated { return .deactivated(confirmation) }
        guard let settings else { return confirmation.map { .stale($0) } ?? .unconfirmed }
        guard settings.target.requiresConfirmation else { return .notRequired }
        guard let confirmation else { return .unconfirmed }
        return confirmation.settingsHash == settings.settingsHash ? .confirmed(confirmation) : .stale(confirmation)
    }

    func activationConfirmation(_ txn: some ReadableTransaction, pipeline: String) throws -> ActivationConfirmation? {
        guard let bytes = try txn.get(meta, key: ActivationKey.confirmation(pipeline)) else { return nil }
        do {
            return try JSONDecoder().decode(ActivationConfirmation.self, from: Data(bytes))
        } catch {
            throw StorageError(code: .corrupted, message: "the activation confirmation of pipeline \(pipeline) does not decode",
                underlying: error)
        }
    }

    /// The operator's last decision about `pipeline`'s activation, if any.
    public func activationConfirmation(pipeline: String) throws -> ActivationConfirmation? {
        try environment.read { try activationConfirmation($0, pipeline: pipeline) }
    }

    /// Whether `pipeline`'s invitations under `settings` go out now.
    public func activationStanding(pipeline: String, settings: ActivationSettings?) throws -> ActivationStanding {
        try environment.read { try activationStanding($0, pipeline: pipeline, settings: settings) }
    }

    /// Records the settings `pipeline`'s runs use now (nil: it has no activation any more), for `status`; writes only
    /// when they changed.
    public func noteActivation(pipeline: String, settings: ActivationSettings?) throws {
        let key = ActivationKey.settings(pipeline)
        let value = try settings.map { s -> [UInt8] in
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            return Array(try encoder.encode(NotedActivation(settingsHash: s.settingsHash, target: s.target.key)))
        }
        guard try environment.read({ try $0.get(meta, key: key) }) != value else { return }
        try environment.write { txn in
            if let value { try txn.put(meta, key: key, value: value) } else { _ = try txn.delete(meta, key: key) }
        }
    }

    /// Each pipeline's noted settings, by pipeline.
    public func notedActivations() throws -> [String: NotedActivation] {
        let prefix = Array("activation/settings/".utf8)
        var out: [String: NotedActivation] = [:]
        try environment.read { txn in
            try txn.forEach(meta, from: prefix) { k, v in
                guard k.starts(with: prefix) else { return false }
                if let noted = try? JSONDecoder().decode(NotedActivation.self, from: Data(v)) {
                    out[String(decoding: k[prefix.count...], as: UTF8.self)] = noted
                }
                return true
            }
        }
        return out
    }

    // MARK: Confirming and deactivating

    /// What ``confirmActivation(pipeline:settings:by:host:)`` did with the held entries.
    public struct ReleaseOutcome: Sendable, Equatable {
        /// Held entries queued for the next delivery (still eligible under the confirmed settings).
        public var released = 0
        /// Held entries dropped, by reason (not eligible any more, another target).
        public var dropped: [String: Int] = [:]
        public var confirmation: ActivationConfirmation?
    }

    /// Records that an operator confirmed `settings` for `pipeline`, and releases the pipeline's held entries in
    /// the same transaction: each one for the settings' target whose participant is eligible under them now is
    /// queued (the next delivery sends it); the others are dropped (not consumed: a later change that makes the
    /// participant eligible decides anew).
    public func confirmActivation(pipeline: String, settings: ActivationSettings, by user: String, host: String)
        throws -> ReleaseOutcome
    {
        try writerLock.withLock { _ in
            try environment.write { txn in
                let confirmation = ActivationConfirmation(state: .confirmed, settingsHash: settings.settingsHash,
                    target: settings.target.key, by: user, host: host, at: Self.isoNow())
                try putConfirmation(txn, confirmation, pipeline: pipeline)
                var outcome = ReleaseOutcome(confirmation: confirmation)
                var policy = try ActivationPolicy(store: self, txn: txn, settings: settings, pipeline: pipeline)
                for (pid, target) in try heldEntries(txn, pipeline: pipeline) {
                    let key = ActivationKey.ledger(pid, target)
                    guard let bytes = try txn.get(invitationsDB, key: key) else { continue }
                    var entry = try Invitation.decode(bytes)
                    _ = try txn.delete(invitationsDB, key: ActivationKey.held(pipeline, pid, target))
                    guard entry.state == .held else { continue }
                    var why: String?
                    if target != settings.target.key {
                        why = "the activation now targets \(settings.target.key)"
                    } else if let record = try policy.currentRecord(pid) {
                        why = settings.rule.ineligibility(of: record).map { settings.rule.describe($0) }
                    } else {
                        why = "no longer in the panel"
                    }
                    if let why {
                        entry.state = .dropped
                        entry.reason = "not eligible when the activation was confirmed: \(why)"
                        outcome.dropped[why, default: 0] += 1
                    } else {
                        entry.state = .queued
                        entry.seq = try policy.enqueue(pid: pid, target: target)
                        outcome.released += 1
                    }
                    try txn.put(invitationsDB, key: key, value: entry.json())
                }
                try policy.finish()
                return outcome
            }
        }
    }

    /// Records that an operator stopped `pipeline`'s invitations: what is queued and not yet delivered goes back to
    /// held (not sent), and its runs hold new ones until the activation is confirmed again. Returns how many queued
    /// entries were held.
    @discardableResult
    public func deactivateActivation(pipeline: String, target: String, by user: String, host: String) throws -> Int {
        try writerLock.withLock { _ in
            try environment.write { txn in
                let previous = try activationConfirmation(txn, pipeline: pipeline)
                try putConfirmation(txn, ActivationConfirmation(state: .deactivated,
                    settingsHash: previous?.settingsHash ?? "", target: target, by: user, host: host, at: Self.isoNow()),
                    pipeline: pipeline)
                return try holdQueued(txn, pipeline: pipeline)
            }
        }
    }

    private func putConfirmation(_ txn: WriteTransaction, _ c: ActivationConfirmation, pipeline: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try txn.put(meta, key: ActivationKey.confirmation(pipeline), value: Array(try encoder.encode(c)))
    }

    /// Turns every queued, undelivered entry of `pipeline` back into a held one and consumes the queue (the
    /// delivered cursor moves past it); returns how many.
    func holdQueued(_ txn: WriteTransaction, pipeline: String) throws -> Int {
        let last = try readCounter(txn, ActivationKey.queuedSeq(pipeline)) ?? 0
        let delivered = try readCounter(txn, ActivationKey.deliveredSeq(pipeline)) ?? 0
        guard last > delivered else { return 0 }
        var held = 0
        for (_, pid, target) in try queuedEntries(txn, pipeline: pipeline, after: delivered, limit: .max) {
            let key = ActivationKey.ledger(pid, target)
            guard let bytes = try txn.get(invitationsDB, key: key) else { continue }
            var entry = try Invitation.decode(bytes)
            guard entry.state == .queued else { continue }
            entry.state = .held
            entry.seq = nil
            try txn.put(invitationsDB, key: key, value: entry.json())
            try txn.put(invitationsDB, key: ActivationKey.held(pipeline, pid, target), value: [])
            held += 1
        }
        _ = try txn.deleteRange(invitationQueue, from: ActivationKey.sequenced(pipeline, delivered + 1),
            upTo: ActivationKey.sequenced(pipeline, last + 1))
        try txn.put(meta, key: ActivationKey.deliveredSeq(pipeline), value: bytesBE(last))
        return held
    }

    // MARK: Reading the ledger

    /// The held entries of `pipeline`: participant and target key.
    func heldEntries(_ txn: some ReadableTransaction, pipeline: String) throws -> [(UInt64, String)] {
        let prefix = ActivationKey.heldPrefix(pipeline)
        var out: [(UInt64, String)] = []
        try txn.forEach(invitationsDB, from: prefix) { k, _ in
            guard k.starts(with: prefix), k.count >= prefix.count + 8 else { return false }
            let pid: UInt64 = loadBE(UnsafeRawBufferPointer(rebasing: k[prefix.count..<(prefix.count + 8)]))
            out.append((pid, String(decoding: k[(prefix.count + 8)...], as: UTF8.self)))
            return true
        }
        return out
    }

    /// Queue entries of `pipeline` after sequence `after`, in order: sequence, participant, target key.
    func queuedEntries(_ txn: some ReadableTransaction, pipeline: String, after: UInt64, limit: Int) throws
        -> [(UInt64, UInt64, String)]
    {
        let prefix = ActivationKey.pipelinePrefix(pipeline)
        var out: [(UInt64, UInt64, String)] = []
        guard limit > 0 else { return out }
        try txn.forEach(invitationQueue, from: ActivationKey.sequenced(pipeline, after &+ 1)) { k, v in
            guard k.count == prefix.count + 8, k.starts(with: prefix), v.count >= 8 else { return false }
            let seq: UInt64 = loadBE(UnsafeRawBufferPointer(rebasing: k[prefix.count...]))
            out.append((seq, loadBE(v), String(decoding: v[8...], as: UTF8.self)))
            return out.count < limit
        }
        return out
    }

    /// The ledger entries (of `pipeline`, or all), in participant and target order, at most `limit`.
    public func invitations(pipeline: String?, limit: Int = .max) throws -> [Invitation] {
        var out: [Invitation] = []
        guard limit > 0 else { return out }
        try environment.read { txn in
            try txn.forEach(invitationsDB, from: [UInt8(ascii: "L")]) { k, v in
                guard k.first == UInt8(ascii: "L") else { return false }
                let entry = try Invitation.decode(v)
                if pipeline == nil || entry.pipeline == pipeline { out.append(entry) }
                return out.count < limit
            }
        }
        return out
    }

    /// One page of a ledger listing, and what the whole listing holds.
    public struct InvitationPage: Sendable, Equatable {
        /// Every entry of the pipeline (all pipelines: nil), by state; each state present, 0 when none.
        public var counts: [Invitation.State: Int]
        /// How many entries are in the state asked for (all of them when none was).
        public var matching: Int
        /// The matching entries from `offset`, at most `limit`, in ledger order (participant, then target).
        public var entries: [Invitation]
    }

    /// A page of `pipeline`'s ledger (nil: every pipeline's), only entries in `state` when given, with the counts of
    /// the whole listing: one scan that keeps only the page (a ledger of millions is never held in memory).
    public func invitationPage(pipeline: String?, state: Invitation.State? = nil, offset: Int = 0, limit: Int) throws
        -> InvitationPage
    {
        var page = InvitationPage(
            counts: Dictionary(uniqueKeysWithValues: Invitation.State.allCases.map { ($0, 0) }), matching: 0,
            entries: [])
        let first = max(0, offset)
        let last = first.addingReportingOverflow(max(0, limit))
        let end = last.overflow ? Int.max : last.partialValue
        try environment.read { txn in
            try txn.forEach(invitationsDB, from: [UInt8(ascii: "L")]) { k, v in
                guard k.first == UInt8(ascii: "L") else { return false }
                let entry = try Invitation.decode(v)
                guard pipeline == nil || entry.pipeline == pipeline else { return true }
                page.counts[entry.state, default: 0] += 1
                guard state == nil || entry.state == state else { return true }
                if page.matching >= first && page.matching < end { page.entries.append(entry) }
                page.matching += 1
                return true
            }
        }
        return page
    }

    /// The directory `pipeline`'s invitations were last delivered into (absolute), if any.
    public func invitationDirectory(pipeline: String) throws -> String? {
        try environment.read { try $0.get(meta, key: ActivationKey.directory(pipeline)) }
            .map { String(decoding: $0, as: UTF8.self) }
    }

    /// The held entries of `pipeline`, each with its participant's record as the panel holds it now (nil: gone).
    public func heldInvitations(pipeline: String) throws -> [(invitation: Invitation, record: [UInt8]?)] {
        var decompressor: ZstdDecompressor?
        return try environment.read { txn in
            try heldEntries(txn, pipeline: pipeline).compactMap { pid, target in
                guard let bytes = try txn.get(invitationsDB, key: ActivationKey.ledger(pid, target)) else { return nil }
                let entry = try Invitation.decode(bytes)
                let record = try withBE(pid) { k in
                    try txn.withValue(panel, key: k) { v in
                        try v.map { try decodePanelValue(pid: pid, value: $0, decompressor: &decompressor, txn).record }
                    }
                }
                return (entry, record)
            }
        }
    }

    /// The entry for (`participantID`, `target`), if any.
    public func invitation(participantID: UInt64, target: String) throws -> Invitation? {
        try environment.read { txn in
            try txn.get(invitationsDB, key: ActivationKey.ledger(participantID, target)).map { try Invitation.decode($0) }
        }
    }

    /// A pipeline's invitations at a glance (for `status`): held entries, queued and not yet delivered, and lines
    /// delivered (in how many segments).
    public struct InvitationStatistics: Sendable, Equatable {
        public var held = 0
        public var pending = 0
        public var sent = 0
        public var segments = 0
        public var queuedSequence: UInt64 = 0
        public var deliveredSequence: UInt64 = 0
        /// Each invitation webhook that has acknowledged something, by the hash of its URL (status shows how far
        /// behind the delivered invitations it is).
        public var webhooks: [InvitationWebhookCursor] = []
    }

    /// How far an invitation webhook got: the last invitation sequence it acknowledged.
    public struct InvitationWebhookCursor: Sendable, Equatable {
        public var urlHash: UInt64
        public var acknowledged: UInt64
    }

    /// ``InvitationStatistics`` of `pipeline` (no scan of the ledger: its held index, counters and segments).
    public func invitationStatistics(pipeline: String) throws -> InvitationStatistics {
        try environment.read { txn in
            var s = InvitationStatistics()
            s.held = try heldEntries(txn, pipeline: pipeline).count
            s.queuedSequence = try readCounter(txn, ActivationKey.queuedSeq(pipeline)) ?? 0
            s.deliveredSequence = try readCounter(txn, ActivationKey.deliveredSeq(pipeline)) ?? 0
            s.pending = Int(s.queuedSequence - min(s.queuedSequence, s.deliveredSequence))
            for info in try invitationSegments(txn, pipeline: pipeline) {
                s.sent += info.invitations
                s.segments += 1
            }
            s.webhooks = try invitationWebhookCursors(txn, pipeline: pipeline)
            return s
        }
    }

    /// The webhook cursors of `pipeline`: keys `invite_webhook/<pipeline>/<hex hash>`. The hash never holds `/`, so
    /// the cursors of a pipeline named `a/b` are not taken for `a`'s.
    func invitationWebhookCursors(_ txn: some ReadableTransaction, pipeline: String) throws -> [InvitationWebhookCursor] {
        let prefix = Array("invite_webhook/\(pipeline)/".utf8)
        var found: [InvitationWebhookCursor] = []
        try txn.forEach(meta, from: prefix) { k, v in
            guard k.starts(with: prefix) else { return false }
            let rest = String(decoding: k[prefix.count...], as: UTF8.self)
            guard let hash = UInt64(rest, radix: 16), String(hash, radix: 16) == rest else { return true }
            guard v.count == 8 else {
                throw StorageError(code: .corrupted, message: "invitation webhook cursor of \(pipeline) in \(directory) is not 8 bytes")
            }
            found.append(InvitationWebhookCursor(urlHash: hash, acknowledged: loadBE(v)))
            return true
        }
        return found
    }

    /// The last invitation sequence of `pipeline` the webhook of URL hash `urlHash` acknowledged (0: none).
    public func invitationWebhookCursor(pipeline: String, urlHash: UInt64) throws -> UInt64 {
        try environment.read { try readCounter($0, ActivationKey.webhookCursor(pipeline, urlHash)) } ?? 0
    }

    /// Moves that cursor.
    public func setInvitationWebhookCursor(_ seq: UInt64, pipeline: String, urlHash: UInt64) throws {
        try environment.write { try $0.put(meta, key: ActivationKey.webhookCursor(pipeline, urlHash), value: bytesBE(seq)) }
    }

    /// Every pipeline that has a ledger entry, a confirmation or noted settings.
    public func activationPipelines() throws -> [String] {
        var names = Set(try notedActivations().keys)
        let prefix = Array("activation/confirmation/".utf8)
        try environment.read { txn in
            try txn.forEach(meta, from: prefix) { k, _ in
                guard k.starts(with: prefix) else { return false }
                names.insert(String(decoding: k[prefix.count...], as: UTF8.self))
                return true
            }
            let seqPrefix = Array("invite_seq/".utf8)
            try txn.forEach(meta, from: seqPrefix) { k, _ in
                guard k.starts(with: seqPrefix) else { return false }
                names.insert(String(decoding: k[seqPrefix.count...], as: UTF8.self))
                return true
            }
        }
        return names.sorted()
    }
}

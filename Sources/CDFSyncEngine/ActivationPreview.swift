import CDFSyncClient
import CDFSyncCore
import CDFSyncStorage
import Foundation

/// What `cdfsync pipeline activate` shows before it asks: what confirming would do now (docs/activation.md).
///
/// Two parts. **Held**: the ledger's held entries of the pipeline, each judged as confirming would judge it — sent
/// with the next sync when the participant is eligible now under these settings, dropped otherwise (with why). And,
/// unless skipped, **the source now**: a sample of the source read with the pipeline's own query, each row mapped and
/// judged — eligible and new to the panel (would be invited as it is imported), already invited or held, already in
/// the panel (invited only if a change makes them eligible: activation never sweeps the panel), or excluded (why).
/// Reads only; the confirmation is recorded separately.
public struct ActivationPreview: Sendable {
    /// One participant, as the preview lists it.
    public struct Sample: Sendable, Equatable {
        public var externalID: String
        public var participantID: UInt64?
        /// The record's email or phone and name, for an operator to recognise them.
        public var contact: String
    }

    public var pipeline: String
    public var target: ActivationTarget
    public var settingsHash: String
    public var standing: PanelStore.ActivationStanding

    /// Held entries that confirming would send (eligible now), with a sample.
    public var heldToSend = 0
    public var heldSample: [Sample] = []
    /// Held entries that confirming would drop, by reason.
    public var heldDropped: [String: Int] = [:]

    /// The source part (nil when skipped).
    public var source: SourcePart?

    public struct SourcePart: Sendable, Equatable {
        /// Rows read (the sample's size) and whether the source may hold more.
        public var rowsRead = 0
        public var limit = 0
        /// Eligible rows whose key the panel does not hold: invited as they are imported.
        public var wouldInvite = 0
        public var sample: [Sample] = []
        /// Eligible rows whose participant the ledger holds as queued or sent / as held.
        public var alreadyInvited = 0
        public var alreadyHeld = 0
        /// Eligible rows whose key the panel already holds (no ledger entry): not invited unless a change makes them
        /// eligible.
        public var alreadyInPanel = 0
        /// Rows excluded, by reason (`not opted in`, `no email or phone`, `eligibility: …`, `invalid`).
        public var excluded: [String: Int] = [:]
    }

    /// Builds the preview; `store` nil is a state directory no run has created (nothing held, nobody in the panel);
    /// `client` nil (or `sampleRows` 0) skips the source part.
    public static func build(store: PanelStore?, pipeline: Pipeline, client: StatementClient?, sampleRows: Int) throws
        -> ActivationPreview
    {
        guard let settings = pipeline.activationSettings else {
            throw SyncError("pipeline \(pipeline.name) has no activation to confirm (activation: import)",
                remedy: "Give the pipeline an activation (pool, invite_study or invite_task); see docs/activation.md.")
        }
        let rule = settings.rule
        var preview = ActivationPreview(pipeline: pipeline.name, target: settings.target,
            settingsHash: settings.settingsHash,
            standing: try store?.activationStanding(pipeline: pipeline.name, settings: settings)
                ?? (settings.target.requiresConfirmation ? .unconfirmed : .notRequired))
        for (entry, record) in try store?.heldInvitations(pipeline: pipeline.name) ?? [] {
            let why: String? = if entry.target != settings.target.key {
                "held for \(entry.target), which the activation no longer targets"
            } else if let record {
                rule.ineligibility(of: record).map { rule.describe($0) }
            } else {
                "no longer in the panel"
            }
            if let why {
                preview.heldDropped[why, default: 0] += 1
            } else {
                preview.heldToSend += 1
                if preview.heldSample.count < 10, let record {
                    preview.heldSample.append(Sample(externalID: entry.externalID, participantID: entry.participantID,
                        contact: Self.contact(record)))
                }
            }
        }
        guard let client, sampleRows > 0 else { return preview }
        let read = try PipelinePreview.run(client: client, pipeline: pipeline, limit: sampleRows)
        var part = SourcePart(rowsRead: read.rows.count, limit: sampleRows)
        for row in read.rows {
            guard let record = row.record else {
                part.excluded["invalid", default: 0] += 1
                continue
            }
            let externalID: String
            switch row.outcome {
            case .participant(let id), .notOptedIn(let id): externalID = id
            case .event, .invalid: continue
            }
            if let reason = rule.ineligibility(of: record) {
                part.excluded[rule.describe(reason), default: 0] += 1
                continue
            }
            guard let store, let pid = try store.participantID(externalID: externalID, scope: pipeline.name) else {
                part.wouldInvite += 1
                if part.sample.count < 10 {
                    part.sample.append(Sample(externalID: externalID, participantID: nil, contact: Self.contact(record)))
                }
                continue
            }
            switch try store.invitation(participantID: pid, target: settings.target.key)?.state {
            case .queued?, .sent?: part.alreadyInvited += 1
            case .held?: part.alreadyHeld += 1
            case .withdrawn?, .dropped?, nil: part.alreadyInPanel += 1
            }
        }
        preview.source = part
        return preview
    }

    /// `Jakub Nowak <jakub@example.com>`: the name and the email (else the phone) of a record.
    static func contact(_ record: [UInt8]) -> String {
        let object = (try? JSONSerialization.jsonObject(with: Data(record))) as? [String: Any] ?? [:]
        let name = [object["first_name"], object["last_name"]].compactMap { $0 as? String }.joined(separator: " ")
        let reach = object["email"] as? String ?? object["phone"] as? String ?? ""
        return name.isEmpty ? reach : "\(name) <\(reach)>"
    }

    /// The preview as the terminal shows it.
    public func render() -> String {
        var lines = [
            "activation of pipeline \(pipeline): \(target.description)",
            "  settings      sha256 \(settingsHash.prefix(16))… (activation, mapping, attributes, consent and source)",
            "  now           \(standing.description)",
        ]
        func reasons(_ r: [String: Int]) -> String {
            r.sorted { ($1.value, $0.key) < ($0.value, $1.key) }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
        }
        let verb = target.requiresConfirmation ? "invited" : "added to the pool"
        lines.append("held in the ledger (decided while the activation was not confirmed)")
        lines.append("  would be \(verb) now   \(heldToSend)" + (heldToSend > 0 ? "  (sent by the next sync)" : ""))
        for s in heldSample { lines.append("    \(s.externalID)  \(s.contact)") }
        let dropped = heldDropped.values.reduce(0, +)
        lines.append("  excluded               \(dropped)" + (dropped > 0 ? "  (\(reasons(heldDropped)))" : ""))
        if let source {
            let more = source.rowsRead >= source.limit ? "first \(source.rowsRead) rows" : "all \(source.rowsRead) rows"
            lines.append("the source now (\(more); the next syncs import them)")
            lines.append("  would be \(verb)       \(source.wouldInvite)  (eligible, new to the panel)")
            for s in source.sample { lines.append("    \(s.externalID)  \(s.contact)") }
            if source.alreadyInvited > 0 { lines.append("  already \(verb)        \(source.alreadyInvited)") }
            if source.alreadyHeld > 0 { lines.append("  already held           \(source.alreadyHeld)  (counted above)") }
            if source.alreadyInPanel > 0 {
                lines.append("  already in the panel   \(source.alreadyInPanel)  (eligible; \(verb) only if a change makes "
                    + "them newly eligible)")
            }
            let excluded = source.excluded.values.reduce(0, +)
            lines.append("  excluded               \(excluded)" + (excluded > 0 ? "  (\(reasons(source.excluded)))" : ""))
        }
        return lines.joined(separator: "\n")
    }
}

import CDFSyncCore
import CDFSyncStorage
import Foundation

/// What a run's activation did (the run record's `invitations`; docs/activation.md, Audit).
///
/// Decisions (`queued`, `held`, `already_invited`, `already_held`, `not_eligible`) are made as rows are applied;
/// `sent`, `withdrawn` and `held_back` by the delivery at the run's end, which also sends what earlier runs (or a
/// confirmation) queued — so `sent` may differ from `queued`.
public struct InvitationCounts: Sendable, Equatable, Codable {
    /// The target's key (`study:S-42`, `task:T-7`, `pool:early-birds`).
    public var target: String
    /// Whether the activation stood confirmed when the run started: `confirmed`, `not_required` (a pool),
    /// `unconfirmed`, `stale` or `deactivated`.
    public var standing: String
    /// New invitations queued by this run's changes.
    public var queued = 0
    /// New ones held (not confirmed).
    public var held = 0
    /// Eligible participants the ledger already had as queued or sent.
    public var alreadyInvited = 0
    /// Eligible participants the ledger already had as held.
    public var alreadyHeld = 0
    /// Participants decided on and not eligible, by reason.
    public var notEligible: [String: Int] = [:]
    /// Invitations written to the invitation segments by this run's delivery.
    public var sent = 0
    /// Queued invitations not sent: the participant withdrew (or lost every contact) before they went out.
    public var withdrawn = 0
    /// Queued invitations turned back into held ones (the activation did not stand confirmed at delivery).
    public var heldBack = 0
    /// Invitations acknowledged by the activation's webhook.
    public var webhookSent = 0
    /// The invitation segment files written.
    public var files: [String] = []

    public init(target: String, standing: String) {
        self.target = target
        self.standing = standing
    }

    enum CodingKeys: String, CodingKey {
        case target, standing, queued, held, alreadyInvited = "already_invited", alreadyHeld = "already_held"
        case notEligible = "not_eligible", sent, withdrawn, heldBack = "held_back", webhookSent = "webhook_sent", files
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func n(_ key: CodingKeys) throws -> Int { try c.decodeIfPresent(Int.self, forKey: key) ?? 0 }
        target = try c.decodeIfPresent(String.self, forKey: .target) ?? ""
        standing = try c.decodeIfPresent(String.self, forKey: .standing) ?? ""
        queued = try n(.queued)
        held = try n(.held)
        alreadyInvited = try n(.alreadyInvited)
        alreadyHeld = try n(.alreadyHeld)
        notEligible = try c.decodeIfPresent([String: Int].self, forKey: .notEligible) ?? [:]
        sent = try n(.sent)
        withdrawn = try n(.withdrawn)
        heldBack = try n(.heldBack)
        webhookSent = try n(.webhookSent)
        files = try c.decodeIfPresent([String].self, forKey: .files) ?? []
    }

    /// Participants not eligible, all reasons.
    public var notEligibleTotal: Int { notEligible.values.reduce(0, +) }

    /// `2 not opted in, 1 eligibility: country in [GB]` (largest first); one reason alone without its number.
    public var notEligibleText: String {
        if notEligible.count == 1, let only = notEligible.first { return only.key }
        return notEligible.sorted { ($1.value, $0.key) < ($0.value, $1.key) }.map { "\($0.value) \($0.key)" }
            .joined(separator: ", ")
    }
}

extension RunRecord {
    /// Adds what the writer's activation decided (an outcome of an apply) to the record's invitation counts.
    mutating func noteActivation(_ outcome: PanelStore.ActivationOutcome) {
        guard !outcome.isEmpty else { return }
        var c = invitations ?? InvitationCounts(target: "", standing: "")
        c.queued += outcome.queued
        c.held += outcome.held
        c.alreadyInvited += outcome.alreadyInvited
        c.alreadyHeld += outcome.alreadyHeld
        for (k, v) in outcome.notEligible { c.notEligible[k, default: 0] += v }
        invitations = c
    }

    /// The summary's invitation lines (none for a run without an activation).
    public var invitationLines: [String] {
        guard let c = invitations else { return [] }
        let target = ActivationTarget(key: c.target).map(\.description) ?? c.target
        var lines = ["  invitations    \(target) (\(c.standing.replacingOccurrences(of: "_", with: " ")))"]
        func line(_ label: String, _ n: Int, _ note: String) {
            guard n > 0 else { return }
            lines.append("    " + label.padding(toLength: 13, withPad: " ", startingAt: 0) + "\(n)"
                + (note.isEmpty ? "" : "  \(note)"))
        }
        let dry = mode == .replayDryRun
        line(dry ? "would queue" : "queued", c.queued, "newly eligible, to be sent")
        line(dry ? "would hold" : "held", c.held, "newly eligible, held until the activation is confirmed")
        line("already", c.alreadyInvited, "eligible, already invited")
        line("already held", c.alreadyHeld, "eligible, already held")
        line("not eligible", c.notEligibleTotal, c.notEligibleText)
        line("sent", c.sent, c.files.isEmpty ? "" : "→ " + c.files.joined(separator: ", "))
        line("withdrawn", c.withdrawn, "not sent: withdrew before it went out")
        line("held back", c.heldBack, "queued, not sent: the activation is not confirmed")
        line("webhook", c.webhookSent, "invitation(s) acknowledged")
        if lines.count == 1 { lines[0] += ": nothing to decide or send" }
        return lines
    }

    /// `runs show`'s `invitations` block: every key of the record's `invitations` with its value (none without an
    /// activation).
    public var invitationFieldLines: [String] {
        guard let c = invitations else { return [] }
        var fields: [(String, String)] = [
            ("target", c.target), ("standing", c.standing), ("queued", "\(c.queued)"), ("held", "\(c.held)"),
            ("already_invited", "\(c.alreadyInvited)"), ("already_held", "\(c.alreadyHeld)"),
            ("not_eligible", c.notEligible.isEmpty ? "0" : "\(c.notEligibleTotal) (\(c.notEligibleText))"), ("sent", "\(c.sent)"),
            ("withdrawn", "\(c.withdrawn)"), ("held_back", "\(c.heldBack)"), ("webhook_sent", "\(c.webhookSent)"),
        ]
        if !c.files.isEmpty { fields.append(("files", c.files.joined(separator: ", "))) }
        return ["invitations"] + fields.map { "  " + $0.0.padding(toLength: 17, withPad: " ", startingAt: 0) + $0.1 }
    }
}

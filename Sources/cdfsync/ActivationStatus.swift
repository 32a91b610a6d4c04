import CDFSyncCore
import CDFSyncEngine
import CDFSyncStorage
import Foundation

/// `status`'s view of each pipeline's activation (docs/activation.md): its target, whether it stands confirmed, and
/// its invitations — from the store alone (the settings a pipeline's runs last used are noted in it).
struct ActivationStatus {
    var pipeline: String
    var noted: PanelStore.NotedActivation?
    var confirmation: PanelStore.ActivationConfirmation?
    var statistics: PanelStore.InvitationStatistics
    /// What the pipeline's last run decided and sent (its id and record's `invitations`).
    var lastRun: (id: UInt64, counts: InvitationCounts)?
    /// Where its invitations were delivered, and what the next delivery would repair there (empty: intact).
    var directory: String?
    var repairs: [String] = []

    /// `confirmed`, `not_required`, `unconfirmed`, `stale`, `deactivated`, or `removed` (its runs have no activation
    /// any more).
    var standing: String {
        if confirmation?.state == .deactivated { return "deactivated" }
        guard let noted else { return "removed" }
        if ActivationTarget(key: noted.target)?.requiresConfirmation == false { return "not_required" }
        guard let confirmation else { return "unconfirmed" }
        return confirmation.settingsHash == noted.settingsHash ? "confirmed" : "stale"
    }

    static func load(_ store: PanelStore, lastRuns: [(String, UInt64, InvitationCounts)] = []) throws
        -> [ActivationStatus]
    {
        let noted = try store.notedActivations()
        return try store.activationPipelines().map { name in
            let directory = try store.invitationDirectory(pipeline: name)
            return ActivationStatus(pipeline: name, noted: noted[name],
                confirmation: try store.activationConfirmation(pipeline: name),
                statistics: try store.invitationStatistics(pipeline: name),
                lastRun: lastRuns.first { $0.0 == name }.map { ($0.1, $0.2) }, directory: directory,
                repairs: try directory.map { try store.invitationRepairs(pipeline: name, directory: $0) } ?? [])
        }
    }

    var line: String {
        let target = noted.flatMap { ActivationTarget(key: $0.target)?.description } ?? "no activation now"
        let who = confirmation.map { " by \($0.by) at \($0.at)" } ?? ""
        let state: String = switch standing {
        case "confirmed": "confirmed\(who)"
        case "not_required": "no confirmation needed"
        case "unconfirmed": "NOT CONFIRMED: invitations are held — run `cdfsync pipeline activate`"
        case "stale": "confirmation\(who) is STALE (the activation, mapping, consent or source changed): invitations are "
            + "held — run `cdfsync pipeline activate`"
        case "deactivated": "DEACTIVATED\(who): invitations are held"
        default: "activation removed from the pipeline: nothing is sent"
        }
        let s = statistics
        var text = "  \(pipeline)  \(target): \(state)\n      invitations: \(s.sent) sent in \(s.segments) segment(s), "
            + "\(s.pending) queued not yet sent, \(s.held) held"
        for hook in s.webhooks {
            let behind = s.deliveredSequence - min(s.deliveredSequence, hook.acknowledged)
            text += "\n      webhook (URL hash \(String(hook.urlHash, radix: 16))): acknowledged through invitation "
                + "\(hook.acknowledged), \(behind) delivered not yet acknowledged" + (behind > 0 ? " (sent on the next run)" : "")
        }
        if let (id, c) = lastRun {
            var parts = ["\(c.queued) queued", "\(c.held) held", "\(c.sent) sent"]
            if c.alreadyInvited + c.alreadyHeld > 0 { parts.append("\(c.alreadyInvited + c.alreadyHeld) already invited or held") }
            if c.notEligibleTotal > 0 { parts.append("\(c.notEligibleTotal) not eligible (\(c.notEligibleText))") }
            if c.withdrawn > 0 { parts.append("\(c.withdrawn) withdrawn before sending") }
            text += "\n      last run \(id): " + parts.joined(separator: ", ")
        }
        if let directory {
            text += "\n      files in \(directory): "
                + (repairs.isEmpty ? "intact, nothing to repair" : "the next run repairs: " + repairs.joined(separator: "; "))
        }
        return text
    }

    static func lines(_ all: [ActivationStatus]) -> [String] {
        all.isEmpty ? [] : ["activations"] + all.map(\.line)
    }

    static func json(_ all: [ActivationStatus], _ w: inout JSONWriter) {
        w.key("activations")
        w.beginArray()
        for a in all {
            w.beginObject()
            w.key("pipeline"); w.string(a.pipeline)
            w.key("target"); w.string(a.noted?.target)
            w.key("standing"); w.string(a.standing)
            w.key("settings_hash"); w.string(a.noted?.settingsHash)
            w.key("confirmed_by"); w.string(a.confirmation?.by)
            w.key("confirmed_at"); w.string(a.confirmation?.at)
            w.key("confirmed_settings_hash"); w.string(a.confirmation?.settingsHash)
            w.key("sent"); w.int(Int64(a.statistics.sent))
            w.key("segments"); w.int(Int64(a.statistics.segments))
            w.key("queued"); w.int(Int64(a.statistics.pending))
            w.key("held"); w.int(Int64(a.statistics.held))
            w.key("webhooks")
            w.beginArray()
            for hook in a.statistics.webhooks {
                w.beginObject()
                w.key("url_hash"); w.string(String(hook.urlHash, radix: 16))
                w.key("acknowledged"); w.uint(hook.acknowledged)
                let delivered = a.statistics.deliveredSequence
                w.key("behind"); w.uint(delivered - min(delivered, hook.acknowledged))
                w.endObject()
            }
            w.endArray()
            w.key("directory"); w.string(a.directory)
            w.key("repairs"); w.beginArray(); a.repairs.forEach { w.string($0) }; w.endArray()
            w.key("last_run_id"); if let r = a.lastRun { w.uint(r.id) } else { w.null() }
            w.key("last_run_invitations")
            if let c = a.lastRun?.counts, let bytes = try? JSONEncoder().encode(c) { w.raw(Array(bytes)) } else { w.null() }
            w.endObject()
        }
        w.endArray()
    }
}

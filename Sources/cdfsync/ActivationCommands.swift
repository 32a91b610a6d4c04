import ArgumentParser
import CDFSyncClient
import CDFSyncCore
import CDFSyncEngine
import CDFSyncStorage
import Foundation

#if canImport(Glibc)
import Glibc
#endif

extension CDFSyncCommand.PipelineCommand {
    /// `cdfsync pipeline activate p.yaml`: the preview of what confirming would do, a question, and the confirmation
    /// recorded in the state store (who, when, the settings' hash); held invitations are released.
    struct Activate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Confirm a pipeline's activation (its invitations) after a preview of what would happen now.",
            discussion: """
                Shows what confirming would do now: the held invitations that would be sent (still eligible) or \
                dropped, and a sample of the source judged as the sync would (eligible and new, already invited, \
                excluded and why). Then asks; --yes confirms without asking (for scripts). The confirmation \
                records who (the OS user), when, and a hash of the activation, mapping, attributes, consent and \
                source: a change to any of them makes it stale, and runs hold invitations again. Invitations \
                released here are sent by the next sync. See docs/activation.md.
                """)

        @Argument(help: "The pipeline YAML file.")
        var file: String

        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var state: StateOptions

        @Flag(help: "Confirm without asking.")
        var yes = false

        @Option(help: "Rows of the source to read for the preview (0: do not contact the warehouse; at most 10000).")
        var sampleRows: Int = 1000

        func validate() throws {
            guard ArgumentChecks.enabled else { return }
            guard (0...10_000).contains(sampleRows) else {
                throw ValidationError("--sample-rows must be 0…10000; got \(sampleRows).")
            }
        }

        func run() throws {
            try reportingErrors {
                let p = try PipelineLoader.load(path: file)
                guard let settings = p.activationSettings else {
                    throw SyncError("pipeline \(p.name) has no activation to confirm (activation: import)",
                        remedy: "Give it an activation (pool, invite_study or invite_task); see docs/activation.md.")
                }
                let directory = stateDirectory(p, state)
                var client: StatementClient?
                if sampleRows > 0 {
                    let c = interruptibleClient(try connectionSettings(for: p, fallback: connection))
                    client = c
                }
                // The preview only reads (a sync may run meanwhile); the writer lock is taken to record the answer,
                // not while the question waits for it.
                let preview = try ActivationPreview.build(
                    store: StateOptions.hasStore(in: directory) ? try state.openStore(at: directory, access: .reader) : nil,
                    pipeline: p, client: client, sampleRows: sampleRows)
                print(preview.render())
                if case .confirmed(let c) = preview.standing, preview.heldToSend == 0, preview.heldDropped.isEmpty {
                    print("already confirmed for these settings by \(c.by) at \(c.at); nothing to do")
                    return
                }
                if !yes {
                    guard isatty(STDIN_FILENO) != 0 else {
                        throw SyncError("not confirmed: standard input is not a terminal to ask on",
                            remedy: "Run it in a terminal, or pass --yes to confirm from a script.")
                    }
                    FileHandle.standardOutput.write(Data(
                        "Confirm: \(settings.target.description) for eligible participants of \(p.name)? [y/N] ".utf8))
                    let answer = readLine()?.trimmingCharacters(in: .whitespaces).lowercased() ?? ""
                    guard answer == "y" || answer == "yes" else {
                        print("not confirmed; nothing changed")
                        throw ExitCode(1)
                    }
                }
                let store = try state.openStore(at: directory)
                let outcome = try store.confirmActivation(pipeline: p.name, settings: settings, by: operatorName(),
                    host: ProcessInfo.processInfo.hostName)
                let at = outcome.confirmation?.at ?? ""
                print("confirmed by \(operatorName()) at \(at) (settings sha256 \(settings.settingsHash.prefix(16))…)")
                let dropped = outcome.dropped.values.reduce(0, +)
                if outcome.released > 0 || dropped > 0 {
                    print("  released \(outcome.released) held invitation(s): the next `cdfsync sync` sends them"
                        + (dropped > 0 ? "; dropped \(dropped) no longer eligible (not sent)" : ""))
                }
                print("  runs of \(p.name) now send invitations as participants become eligible")
            }
        }
    }

    /// `cdfsync pipeline deactivate p.yaml`: stops a pipeline's invitations.
    struct Deactivate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Stop a pipeline's invitations: runs keep importing and hold them until it is activated again.",
            discussion: """
                Invitations queued and not yet sent go back to held. Records who and when. \
                `cdfsync pipeline activate` confirms again (and releases what is held and still eligible).
                """)

        @Argument(help: "The pipeline YAML file.")
        var file: String

        @OptionGroup var state: StateOptions

        func run() throws {
            try reportingErrors {
                let p = try PipelineLoader.load(path: file)
                let store = try state.openStore(at: stateDirectory(p, state))
                let target = p.activation.target?.key ?? ""
                let held = try store.deactivateActivation(pipeline: p.name, target: target, by: operatorName(),
                    host: ProcessInfo.processInfo.hostName)
                print("invitations of \(p.name) stopped (deactivated by \(operatorName())); runs keep importing and hold "
                    + "new invitations until `cdfsync pipeline activate`"
                    + (held > 0 ? "; \(held) queued invitation(s) not yet sent are held" : ""))
            }
        }
    }
}

extension CDFSyncCommand {
    /// `cdfsync invitations [PIPELINE] [--json]`: the invitation ledger.
    struct InvitationsCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "invitations",
            abstract: "List the invitation ledger: who was invited (or held, withdrawn, dropped) to what, and when.",
            discussion: """
                One line per (participant, target): its state (sent, queued, held, withdrawn, dropped), the \
                pipeline and source key that decided it, when, and the segment it was sent in. Reads the state \
                store only. --json prints one JSON object per entry.
                """)

        @Argument(help: "Only entries of this pipeline (its name, or its YAML file).")
        var pipeline: String?

        @OptionGroup var state: StateOptions

        @Option(help: "Only entries in this state: sent, queued, held, withdrawn or dropped.")
        var only: PanelStore.Invitation.State?

        @Option(help: "At most this many entries.")
        var limit: Int = 10_000

        @Flag(help: "Print each entry as a JSON object, one per line.")
        var json = false

        func validate() throws {
            guard ArgumentChecks.enabled else { return }
            guard limit >= 1 else { throw ValidationError("--limit must be at least 1; got \(limit).") }
        }

        func run() throws {
            try reportingErrors {
                let (name, dir) = try pipelineArgument(pipeline, state)
                let store = try state.openExistingStore(at: dir)
                let page = try store.invitationPage(pipeline: name, state: only, limit: limit)
                let shown = page.entries
                if json {
                    for e in shown { print(String(decoding: e.json(), as: UTF8.self)) }
                    return
                }
                if page.matching == 0 {
                    // A name that is not one of the store's pipelines is most likely a typo: say which there are.
                    let known = try store.activationPipelines()
                    let hint = name.flatMap { n in
                        known.contains(n) || known.isEmpty ? nil
                            : " (pipelines with an activation there: \(known.joined(separator: ", ")))"
                    } ?? ""
                    print("no \(only.map { "\($0.rawValue) " } ?? "")invitations" + (name.map { " of pipeline \($0)" } ?? "")
                        + " in \(FilePaths.shown(dir))" + hint)
                    return
                }
                for e in shown {
                    var line = "\(e.state.rawValue.padding(toLength: 9, withPad: " ", startingAt: 0)) \(e.target)  "
                        + "participant \(e.participantID) (\(e.externalID))  \(e.pipeline)  decided \(e.decidedAt)"
                    if let file = e.file { line += "  sent \(e.sentAt ?? "") in \(file)" }
                    if let reason = e.reason { line += "  \(reason)" }
                    print(line)
                }
                let counts = only.map { [($0, page.matching)] }
                    ?? PanelStore.Invitation.State.allCases.map { ($0, page.counts[$0] ?? 0) }.filter { $0.1 > 0 }
                let summary = counts.map { "\($0.1) \($0.0.rawValue)" }.joined(separator: ", ")
                print("\(page.matching) entr\(page.matching == 1 ? "y" : "ies"): \(summary)"
                    + (shown.count < page.matching ? " (first \(shown.count) shown; --limit)" : ""))
            }
        }
    }
}

extension PanelStore.Invitation.State: ExpressibleByArgument {}

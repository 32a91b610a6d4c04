import ArgumentParser
import CDFSyncClient
import CDFSyncCore
import CDFSyncEngine
import Foundation

extension CDFSyncCommand.PipelineCommand {
    struct Init: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "init",
            abstract: "Write a pipeline file for a source, with the mapping suggested from its columns and a sample.",
            discussion: """
                Reads the source's columns (information_schema), whether its change data feed is on, and a sample \
                of its rows (SELECT <columns> … LIMIT --sample-rows), and prints a commented pipeline file: each \
                field matched to a column by name, type and values, with why; ambiguous or unknown fields left \
                commented out with their candidates; the consent column and its opted-in values; the other columns \
                as commented typed attributes; the mode. Review it, then `cdfsync pipeline validate`. \
                Example: cdfsync pipeline init --source main.research.participants --connection prod > p.yaml
                """)

        @Option(help: "The table or view: catalog.schema.table (parts may be backtick-quoted).")
        var source: String

        @Option(help: "participants or events.")
        var kind: String = Pipeline.Kind.participants.rawValue

        @Option(help: "Rows to sample (1-10000).")
        var sampleRows: Int = SourceProfiler.defaultSampleRows

        @Option(help: "The pipeline's name (default: from the table's name).")
        var name: String?

        @Option(help: "Region of phone numbers written without a country code, ISO alpha-2 (e.g. GB).")
        var phoneRegion: String?

        @Option(help: "Events: the participants pipeline whose external ids user_id holds.")
        var identityPipeline: String?

        @Flag(help: "Print the suggestions (field → column, confidence, reason, candidates) as JSON instead.")
        var json = false

        @OptionGroup var connection: ConnectionOptions
        @OptionGroup(title: "Logging") var logging: LoggingOptions

        func validate() throws {
            guard ArgumentChecks.enabled else { return }
            guard Pipeline.Kind(rawValue: kind) != nil else {
                throw ValidationError("--kind must be participants or events; got '\(kind)'.")
            }
            guard SourceProfiler.sampleRowRange.contains(sampleRows) else {
                throw ValidationError("--sample-rows must be 1…10000; got \(sampleRows).")
            }
            do {
                _ = try QualifiedName(parsing: source)
            } catch {
                throw ValidationError("--source: \(error.message).")
            }
            if let r = phoneRegion, Normalize.callingCodes[r.uppercased()] == nil {
                throw ValidationError("--phone-region '\(r)' is not a supported region (an ISO alpha-2 code, e.g. GB).")
            }
            for (flag, value) in [("--name", name), ("--identity-pipeline", identityPipeline)] {
                if let v = value, let problem = Pipeline.nameProblem(v, maxBytes: PipelineLoader.maxNameBytes) {
                    throw ValidationError("\(flag) \(problem).")
                }
            }
        }

        func run() throws {
            try reportingErrors {
                let table = try QualifiedName(parsing: source)
                let settings = try connection.settings()
                let client = StatementClient(settings: settings)
                Interrupts.install()
                client.isCancelled = { Interrupts.requested }
                let suggestion = try SourceProfiler.suggest(
                    client: client, source: table,
                    options: .init(kind: Pipeline.Kind(rawValue: kind) ?? .participants,
                        defaultPhoneRegion: phoneRegion, identityPipeline: identityPipeline, name: name),
                    sampleRows: sampleRows)
                // Written whole before the summary goes to stderr, so a terminal shows them in that order.
                let text = json ? String(decoding: suggestion.json(), as: UTF8.self) + "\n"
                    : suggestion.yaml(connection: reference(settings))
                FileHandle.standardOutput.write(Data(text.utf8))
                FileHandle.standardError.write(Data((Self.summary(suggestion).joined(separator: "\n") + "\n").utf8))
            }
        }

        /// How the written file names the connection: the saved one, or the settings given inline — the warehouse,
        /// the host when given as a flag (else DATABRICKS_HOST or --host at run time), and the environment variables
        /// the credentials come from, never a credential.
        func reference(_ settings: ConnectionSettings) -> Pipeline.ConnectionRef {
            if let saved = connection.connection { return Pipeline.ConnectionRef(name: saved) }
            var ref = Pipeline.ConnectionRef(host: connection.host, warehouseID: settings.warehouseID)
            switch settings.authentication {
            case .personalAccessToken: ref.tokenEnv = connection.tokenEnv
            case .oauthM2M:
                ref.clientIDEnv = "DATABRICKS_CLIENT_ID"
                ref.clientSecretEnv = "DATABRICKS_CLIENT_SECRET"
            }
            return ref
        }

        /// What the file holds, in a few lines for stderr.
        static func summary(_ s: PipelineSuggestion) -> [String] {
            let by = Dictionary(grouping: s.fields, by: \.status)
            let fields = s.fields.count
            var lines = ["\(s.source): \(by[.suggested]?.count ?? 0) of \(fields) field(s) mapped from "
                + "\(s.columnCount) column(s) and \(s.sampledRows) sampled row(s); mode \(s.mode.mode.rawValue)"]
            for (status, what) in [(PipelineSuggestion.Status.ambiguous, "ambiguous"), (.uncertain, "unsure"),
                                   (.notFound, "no column")] {
                if let list = by[status], !list.isEmpty {
                    lines.append("  \(what): " + list.map(\.field).joined(separator: ", ") + " (commented out)")
                }
            }
            if let c = s.consent, c.status == .suggested {
                lines.append("  consent: \(c.column), opted in: \(c.optedIn.joined(separator: ", "))")
            }
            if !s.isComplete {
                lines.append("  not ready: choose the column of \(s.keyField) in the file before `pipeline validate`")
            }
            return lines
        }
    }
}

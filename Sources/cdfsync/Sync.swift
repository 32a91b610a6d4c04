import ArgumentParser
import CDFSyncClient
import CDFSyncCore
import CDFSyncEngine
import CDFSyncStorage
import Foundation

extension CDFSyncCommand {
    struct Sync: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Sync a CDF-enabled table from the last checkpoint to its latest version.")

        @OptionGroup var connection: ConnectionOptions
        @OptionGroup var state: StateOptions

        @Option(help: "The source table, catalog.schema.table.")
        var table: String

        @Option(help: "Column holding the participant's external id.")
        var key: String = "participant_id"

        @Option(help: "Comma-separated columns to import (default: all).")
        var columns: String?

        @Option(help: "Directory for the zstd-compressed NDJSON change files.")
        var outputDir: String = ".cdfsync/out"

        @Option(help: "Rows applied per LMDB transaction.")
        var batchSize: Int = 50_000

        @Option(help: "Result disposition: auto (by expected size), inline or external-links.")
        var disposition: DispositionChoice = .auto

        @Option(help: "External-link chunks downloaded in parallel.")
        var inFlight: Int = 4

        @Option(help: "At most this many versions per table_changes statement.")
        var maxVersionsPerStatement: Int64 = 500

        @Option(help: "Version to start from when there is no checkpoint.")
        var startVersion: Int64 = 0

        @Option(help: "Also write the run's record as JSON to this file.")
        var summaryJson: String?

        @Flag(help: "Print progress lines on stderr.")
        var verbose = false

        func run() throws {
            try reportingErrors {
                let settings = try connection.settings()
                let table = try QualifiedName(parsing: self.table)
                let store = try PanelStore(directory: state.stateDir)
                let client = StatementClient(settings: settings)
                Interrupts.install()
                client.isCancelled = { Interrupts.requested }
                client.onProgress = { line in FileHandle.standardError.write(Data("  … \(line)\n".utf8)) }
                var options = SyncOptions(
                    table: table, keyColumn: key,
                    columns: columns.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } },
                    outputDirectory: outputDir)
                options.batchSize = batchSize
                options.startVersion = startVersion
                options.maxVersionsPerStatement = maxVersionsPerStatement
                options.disposition = disposition.value
                client.externalLinksInFlight = inFlight
                let sync = CDFSync(client: client, store: store, options: options)
                if verbose { sync.onProgress = { FileHandle.standardError.write(Data("  … \($0)\n".utf8)) } }
                let summary = try sync.run()
                print(summary.render())
                if let path = summaryJson {
                    try Data(summary.auditJSON()).write(to: URL(fileURLWithPath: path))
                }
                if !summary.outputFiles.isEmpty || summary.delivered > 0 {
                    print("  output         \(outputDir)")
                }
            }
        }
    }
}

enum DispositionChoice: String, ExpressibleByArgument, CaseIterable {
    case auto, inline
    case externalLinks = "external-links"

    var value: Statement.Disposition? {
        switch self {
        case .auto: nil
        case .inline: .inline
        case .externalLinks: .externalLinks
        }
    }
}

import ArgumentParser
import CDFSyncClient
import CDFSyncCore
import CDFSyncEngine
import Foundation

extension CDFSyncCommand {
    struct PipelineCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "pipeline", abstract: "Work with pipeline files.", subcommands: [Validate.self])

        struct Validate: ParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Check a pipeline file, and (unless --offline) its source's live schema, field by field.")

            @Argument(help: "The pipeline YAML file.")
            var file: String

            @OptionGroup var connection: ConnectionOptions
            @OptionGroup var state: StateOptions

            @Flag(help: "Only check the file itself; do not contact the warehouse.")
            var offline = false

            func run() throws {
                try reportingErrors {
                    let p = try PipelineLoader.load(path: file)
                    print("✓ \(file): pipeline '\(p.name)', \(p.kind.rawValue) from \(p.source), mode \(p.mode.rawValue)")
                    if offline { return }
                    let (sync, _) = try makeSync(pipelinePath: file, table: nil, key: "", columns: nil, outputDir: nil,
                        connection: connection, state: state, verbose: false) { _, _ in }
                    let findings = sync.validateLive()
                    for f in findings { print("\(f.ok ? "✓" : "✗") \(f.field): \(f.message)") }
                    let bad = findings.filter { !$0.ok }.count
                    if bad > 0 {
                        print("\(bad) problem(s)")
                        throw ExitCode(1)
                    }
                    print("pipeline is valid")
                }
            }
        }
    }
}

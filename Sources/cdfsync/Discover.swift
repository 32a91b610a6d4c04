import ArgumentParser
import CDFSyncClient
import CDFSyncCore
import CDFSyncEngine
import Foundation

extension CDFSyncCommand {
    struct Discover: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show the catalogs, schemas, tables, views and columns the identity may see.",
            discussion: """
                --catalog and --schema limit the listing. For Delta tables it also shows whether the change data \
                feed is on and the latest version. --json prints the stable form described in docs/discovery.md.
                """)

        @Argument(help: "Saved connection (default: --connection, or the flags and environment).")
        var name: String?

        @OptionGroup var connection: ConnectionOptions

        @Flag(help: "Print the cdfsync-discovery/1 JSON document.")
        var json = false

        @Flag(help: "Skip the per-table CDF and version queries (two statements per Delta table).")
        var noDetails = false

        @OptionGroup(title: "Logging") var logging: LoggingOptions

        func run() throws {
            try reportingErrors {
                let options = connection.naming(name)
                let client = StatementClient(settings: try options.settings())
                let result = try Discovery.run(
                    client: client, catalog: connection.catalog, schema: connection.schema, details: !noDetails)
                if json {
                    print(String(decoding: result.json(), as: UTF8.self))
                } else {
                    print(result.renderTree())
                }
            }
        }
    }
}

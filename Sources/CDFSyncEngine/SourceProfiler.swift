import CDFSyncClient
import CDFSyncCore
import Foundation

/// Reads what a pipeline suggestion is made from: a source's type and format (`information_schema.tables`), its
/// columns and their types (`information_schema.columns`), whether its change data feed is on
/// (`SHOW TBLPROPERTIES`), and a bounded sample of its rows (`SELECT <columns> FROM <source> LIMIT n`).
///
/// Every statement is built here: identifiers backtick-quoted, names compared through bound parameters, the row
/// limit an integer checked to be in ``sampleRowRange``; no user text becomes SQL. Reads only.
public enum SourceProfiler {
    /// Rows sampled unless told otherwise.
    public static let defaultSampleRows = 1000
    /// The sample sizes allowed.
    public static let sampleRowRange = 1...10_000

    /// The profile of `source`, under the names the catalog gives it.
    ///
    /// - Parameters:
    ///   - source: the table or view (matched case-insensitively, as Databricks resolves names).
    ///   - sampleRows: rows to read (clamped to ``sampleRowRange``). STRUCT, MAP and ARRAY columns are not sampled
    ///     (their type says what they are, and their values can be large).
    /// - Throws: `SyncError` when the source is not visible to the identity; the client's `DatabricksError`s.
    public static func profile(client: StatementClient, source: QualifiedName,
                               sampleRows: Int = defaultSampleRows) throws -> SourceProfile
    {
        let limit = min(max(sampleRows, sampleRowRange.lowerBound), sampleRowRange.upperBound)
        let infoSchema = "\(SQL.quoteIdentifier(source.catalog)).\(SQL.quoteIdentifier("information_schema"))"
        let names = [StatementParameter(name: "sch", value: source.schema.lowercased()),
                     StatementParameter(name: "tbl", value: source.table.lowercased())]
        let matching = " WHERE lower(\(SQL.quoteIdentifier("table_schema"))) = :sch"
            + " AND lower(\(SQL.quoteIdentifier("table_name"))) = :tbl"
        func cols(_ names: [String]) -> String { names.map(SQL.quoteIdentifier).joined(separator: ", ") }

        // The table: its names as the catalog stores them, its type and format. A catalog without an
        // information_schema (hive_metastore) answers TABLE_OR_VIEW_NOT_FOUND: the sample's manifest stands in.
        var canonical = source
        var tableType: String?
        var format: String?
        var columns: [(name: String, type: String)] = []
        var hasInformationSchema = true
        do {
            let tables = try client.collect(Statement(
                sql: "SELECT "
                    + cols(["table_catalog", "table_schema", "table_name", "table_type", "data_source_format"])
                    + " FROM \(infoSchema).\(SQL.quoteIdentifier("tables"))\(matching)",
                parameters: names))
            guard !tables.rows.isEmpty else {
                throw SyncError("source \(source) is not visible to this identity (information_schema.tables has no "
                        + "such table or view)",
                    remedy: "Check the name (catalog.schema.table; cdfsync discover lists what this identity sees) and "
                        + "its grants (USE CATALOG, USE SCHEMA, SELECT).")
            }
            // The row whose names match exactly, else the first (names differ only in case).
            let row = tables.rows.indices.first { r in
                tables.value(r, "table_schema") == source.schema && tables.value(r, "table_name") == source.table
            } ?? 0
            if let c = tables.value(row, "table_catalog"), let s = tables.value(row, "table_schema"),
                let t = tables.value(row, "table_name")
            {
                canonical = QualifiedName(catalog: c, schema: s, table: t)
            }
            tableType = tables.value(row, "table_type")
            format = tables.value(row, "data_source_format")
            let found = try client.collect(Statement(
                sql: "SELECT \(cols(["table_name", "column_name", "full_data_type", "ordinal_position"]))"
                    + " FROM \(infoSchema).\(SQL.quoteIdentifier("columns"))"
                    + " WHERE \(SQL.quoteIdentifier("table_schema")) = :sch"
                    + " AND \(SQL.quoteIdentifier("table_name")) = :tbl",
                parameters: [StatementParameter(name: "sch", value: canonical.schema),
                             StatementParameter(name: "tbl", value: canonical.table)]))
            columns = found.rows.indices.compactMap { r -> (String, String, Int)? in
                guard let name = found.value(r, "column_name") else { return nil }
                let position = found.value(r, "ordinal_position").flatMap { Int($0) } ?? Int.max
                return (name, found.value(r, "full_data_type") ?? "string", position)
            }.sorted { $0.2 < $1.2 }.map { ($0.0, $0.1) }
        } catch let e as DatabricksError where e.category == .tableNotFound {
            hasInformationSchema = false
        }

        let isView = tableType.map { ["VIEW", "MATERIALIZED_VIEW", "METRIC_VIEW"].contains($0.uppercased()) } ?? false
        var changeDataFeed: Bool?
        if let f = format, f.uppercased() != "DELTA" {
            changeDataFeed = false
        } else if !isView {
            do {
                changeDataFeed = try Discovery.changeDataFeedEnabled(client: client, table: canonical)
            } catch let e as DatabricksError
                where [.permissionDenied, .tableNotFound, .statementFailed].contains(e.category)
            {
                changeDataFeed = nil
            }
        }

        // The sample: the columns worth sampling, by name (or every column where the catalog listed none).
        let sampled = columns.filter { ColumnKind(sqlType: $0.type).isSampled }.map(\.name)
        var values: [String: [String?]] = [:]
        var rows = 0
        if columns.isEmpty || !sampled.isEmpty {
            let sink = CollectingSink(limit: limit)
            let outcome = try client.execute(Statement(
                sql: SQL.snapshot(of: canonical, columns: columns.isEmpty ? nil : sampled, version: nil)
                    + " LIMIT \(limit)"),
                sink: sink)
            if columns.isEmpty {
                columns = (outcome.manifest?.schema.columns ?? []).sorted { $0.position < $1.position }
                    .map { ($0.name, $0.typeText.isEmpty ? $0.typeName.rawValue : $0.typeText) }
            }
            rows = sink.rows.count
            for (i, name) in sink.columns.enumerated() {
                values[name.lowercased()] = sink.rows.map { i < $0.count ? $0[i] : nil }
            }
        }
        guard !columns.isEmpty else {
            throw SyncError("source \(canonical) has no columns\(hasInformationSchema ? "" : " in its sample")",
                remedy: "Check the name; a pipeline needs at least its key column.")
        }
        return SourceProfile(
            source: canonical, tableType: tableType, format: format, changeDataFeed: changeDataFeed,
            columns: columns.map { SourceProfile.Column(name: $0.name, type: $0.type,
                values: values[$0.name.lowercased()] ?? []) },
            sampledRows: rows)
    }

    /// ``profile(client:source:sampleRows:)`` then ``PipelineSuggester/suggest(_:options:)``: what
    /// `cdfsync pipeline init` writes, and what the console shows.
    public static func suggest(client: StatementClient, source: QualifiedName,
                               options: PipelineSuggester.Options = .init(),
                               sampleRows: Int = defaultSampleRows) throws -> PipelineSuggestion
    {
        PipelineSuggester.suggest(try profile(client: client, source: source, sampleRows: sampleRows), options: options)
    }
}

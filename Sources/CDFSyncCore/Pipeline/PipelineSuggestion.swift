/// What `cdfsync pipeline init` (and the web console) suggests for a source: each panel field's column with how sure
/// it is and why, the consent column and its opted-in values, the other columns as typed attributes, and the mode.
///
/// Made by ``PipelineSuggester/suggest(_:options:)`` from a ``SourceProfile`` (the source's columns and a sample of
/// their values); written as a commented pipeline file by ``yaml(connection:)``, as JSON by ``json()``, or as the
/// ``Pipeline`` its confident suggestions make by ``pipeline(connection:)``. No I/O.
public struct PipelineSuggestion: Sendable, Equatable {
    /// How a field's suggestion came out.
    public enum Status: String, Sendable, Equatable, CaseIterable {
        /// One column fits clearly: written into the mapping.
        case suggested
        /// Several columns fit equally well: left commented out with each of them.
        case ambiguous
        /// One column fits, but the evidence is thin: left commented out with the reason.
        case uncertain
        /// No column fits: left commented out, with the near misses.
        case notFound = "not_found"
    }

    /// A column considered for a field.
    public struct Candidate: Sendable, Equatable {
        public var column: String
        /// The column's type as the source states it (`full_data_type`).
        public var type: String
        /// 0…1.
        public var confidence: Double
        /// Why it was considered, and what its values say (`synonym of phone, 96 % of 1,000 sampled values look
        /// like phone numbers`).
        public var reason: String
        /// The evidence in a few words, for lists of candidates (`96 % phone-shaped`).
        public var brief: String
        /// Whether its type and values fit the field (a name match whose values do not is a near miss).
        public var fits: Bool
        /// The strength of the name evidence: 3 the field's own name, 2 a synonym or a name containing one, 1 a
        /// weak or qualified name (`id`, `manager_email`), 0 none (values alone).
        public var nameTier: Int

        public init(column: String, type: String, confidence: Double, reason: String, brief: String, fits: Bool,
                    nameTier: Int) {
            self.column = column
            self.type = type
            self.confidence = confidence
            self.reason = reason
            self.brief = brief
            self.fits = fits
            self.nameTier = nameTier
        }
    }

    /// One panel field (or event field) and the column suggested for it.
    public struct Field: Sendable, Equatable {
        public var field: String
        public var status: Status
        /// The column: for `suggested` the one mapped; for `uncertain` the one offered; nil otherwise.
        public var column: String?
        /// 0…1; the chosen or best candidate's.
        public var confidence: Double
        /// Why, in words (`name match, 98 % of 1,000 sampled values look like emails`; `ambiguous — mobile (96 %
        /// phone-shaped), work_phone (91 % phone-shaped)`).
        public var reason: String
        /// Every column considered, best first (those that fit first).
        public var candidates: [Candidate]
    }

    /// The consent column and the values that mean opted in.
    public struct Consent: Sendable, Equatable {
        public var column: String
        /// Distinct sampled values read as opted in (compared trimmed and case-insensitively), most frequent first.
        public var optedIn: [String]
        /// Distinct sampled values read as not opted in, with how often each was seen.
        public var notOptedIn: [ValueCount]
        /// Sampled values neither list recognises (read as not opted in until added), with counts.
        public var unrecognised: [ValueCount]
        /// Whether the column's name says opted *out* (`do_not_contact`, `unsubscribed`): its true values mean no.
        public var inverted: Bool
        /// Whether it is written active (`suggested`) or commented out (`uncertain`).
        public var status: Status
        public var reason: String
    }

    /// A value seen in the sample and how many sampled rows held it.
    public struct ValueCount: Sendable, Equatable {
        public var value: String
        public var count: Int
        public init(value: String, count: Int) {
            self.value = value
            self.count = count
        }
    }

    /// A column offered as a typed attribute (commented out in the file).
    public struct Attribute: Sendable, Equatable {
        public var column: String
        /// An output name, given when the column's own is awkward as a JSON key (`Shoe Size (EU)` → `shoe_size_eu`).
        public var name: String?
        public var type: Pipeline.Attribute.ValueType
        public var sourceType: String
    }

    /// How the source is to be read.
    public struct ModeChoice: Sendable, Equatable {
        public var mode: Pipeline.Mode
        /// The watermark cursor (watermark mode).
        public var cursor: String?
        public var reason: String
        /// Columns that could be the cursor when none was chosen (named like a last-modified time), for the comment.
        public var cursorCandidates: [String]
    }

    /// The source, as the warehouse names it.
    public var source: QualifiedName
    public var kind: Pipeline.Kind
    /// A pipeline name derived from the table's (``PipelineSuggester/pipelineName(for:)``).
    public var name: String
    /// `information_schema.tables.table_type` (`MANAGED`, `VIEW`, …); nil when the catalog does not say.
    public var tableType: String?
    /// `delta.enableChangeDataFeed`; nil when unknown (a view, or the properties could not be read).
    public var changeDataFeed: Bool?
    public var columnCount: Int
    public var sampledRows: Int
    /// One per field of the kind, in the pipeline's field order.
    public var fields: [Field]
    /// nil when no column looks like consent (every row is then imported as contactable).
    public var consent: Consent?
    /// When the consent column is ambiguous: each candidate with its values read, for the reader to pick one.
    public var consentAlternatives: [Consent]
    /// The columns no field uses, typed, in source order.
    public var attributes: [Attribute]
    public var mode: ModeChoice
    /// `validation.default_phone_region`, when given to the suggester.
    public var defaultPhoneRegion: String?
    /// Events: the participants pipeline whose external ids `user_id` holds, when given.
    public var identityPipeline: String?
    /// Things to tell whoever reads the file (written as comments near the top, and in the JSON).
    public var notes: [String]

    /// The field's suggestion.
    public func field(_ name: String) -> Field? { fields.first { $0.field == name } }

    /// The key field of the kind (`external_id`, or `event_id` for events).
    public var keyField: String { kind == .events ? "event_id" : "external_id" }

    /// Whether the written file is complete: the key field has a column (otherwise the reader must choose one).
    public var isComplete: Bool { field(keyField)?.status == .suggested }

    /// The mapping of every `suggested` field: panel field → column. `user_id` of events only with an identity
    /// pipeline (a file that maps it without one does not validate).
    public var mapping: [String: String] {
        var m: [String: String] = [:]
        for f in fields where f.status == .suggested {
            guard let c = f.column else { continue }
            if kind == .events && f.field == "user_id" && identityPipeline == nil { continue }
            m[f.field] = c
        }
        return m
    }

    /// The pipeline the confident suggestions make: the mapping, consent, mode and watermark, validation, the
    /// default ndjson sink; attributes left out (they are offers). This is what ``yaml(connection:)`` loads as.
    public func pipeline(connection: Pipeline.ConnectionRef) -> Pipeline {
        var validation = Pipeline.Validation.defaults(for: kind)
        validation.defaultPhoneRegion = defaultPhoneRegion
        let consentBlock = consent.flatMap { c in
            c.status == .suggested ? Pipeline.Consent(column: c.column, optedIn: c.optedIn) : nil
        }
        return Pipeline(
            name: name, connection: connection, source: PipelineSuggester.sourceText(source), kind: kind,
            mode: mode.mode, start: mode.mode == .cdf ? .latest : .first, mapping: mapping, consent: consentBlock,
            validation: validation,
            watermark: mode.mode == .watermark ? Pipeline.Watermark(column: mode.cursor) : nil,
            sinks: [Pipeline.Sink(type: .ndjson, directory: ".cdfsync/out/\(name)")],
            identityPipeline: kind == .events ? identityPipeline : nil)
    }
}

/// A source as the suggester sees it: its columns with a sample of values, and what the catalog says about it.
public struct SourceProfile: Sendable, Equatable {
    /// A column and its sampled values.
    public struct Column: Sendable, Equatable {
        public var name: String
        /// The type as `information_schema.columns.full_data_type` (or a result manifest) gives it.
        public var type: String
        /// The sampled values in row order (nil: NULL); empty when the column was not sampled.
        public var values: [String?]

        public init(name: String, type: String, values: [String?] = []) {
            self.name = name
            self.type = type
            self.values = values
        }
    }

    public var source: QualifiedName
    /// `MANAGED`, `EXTERNAL`, `VIEW`, `MATERIALIZED_VIEW`, …; nil when the catalog does not say.
    public var tableType: String?
    /// `DELTA`, `PARQUET`, …; nil for views or when unknown.
    public var format: String?
    /// `delta.enableChangeDataFeed` is true; nil when unknown.
    public var changeDataFeed: Bool?
    /// In source order.
    public var columns: [Column]
    /// Rows in the sample.
    public var sampledRows: Int

    public init(source: QualifiedName, tableType: String?, format: String? = nil, changeDataFeed: Bool?,
                columns: [Column], sampledRows: Int) {
        self.source = source
        self.tableType = tableType
        self.format = format
        self.changeDataFeed = changeDataFeed
        self.columns = columns
        self.sampledRows = sampledRows
    }

    /// Whether the source is a view (no history, no change data).
    public var isView: Bool {
        guard let t = tableType?.uppercased() else { return false }
        return t == "VIEW" || t == "MATERIALIZED_VIEW" || t == "METRIC_VIEW"
    }
}

/// The broad type of a column, from its SQL type text.
public enum ColumnKind: String, Sendable, Equatable {
    case string, integer, decimal, double, boolean, date, timestamp
    /// STRUCT, MAP, ARRAY: delivered as JSON text.
    case complex
    /// BINARY, INTERVAL, VARIANT, VOID, …
    case other

    /// The kind of a Databricks type (`bigint`, `decimal(10,2)`, `timestamp_ntz`, `array<string>`, …).
    public init(sqlType: String) {
        let t = sqlType.trimmingWhitespace().uppercased()
        let base = String(t.prefix { $0.isLetter || $0 == "_" })
        switch base {
        case "STRING", "VARCHAR", "CHAR", "TEXT": self = .string
        case "TINYINT", "SMALLINT", "INT", "INTEGER", "BIGINT", "LONG", "SHORT", "BYTE": self = .integer
        case "DECIMAL", "DEC", "NUMERIC": self = .decimal
        case "FLOAT", "REAL", "DOUBLE": self = .double
        case "BOOLEAN", "BOOL": self = .boolean
        case "DATE": self = .date
        case "TIMESTAMP", "TIMESTAMP_NTZ", "TIMESTAMP_LTZ": self = .timestamp
        case "STRUCT", "MAP", "ARRAY": self = .complex
        default: self = .other
        }
    }

    /// The attribute type a column of this kind is offered as.
    public var attributeType: Pipeline.Attribute.ValueType {
        switch self {
        case .string, .other: .string
        case .integer: .integer
        case .decimal: .decimal
        case .double: .double
        case .boolean: .boolean
        case .date: .date
        case .timestamp: .timestamp
        case .complex: .json
        }
    }

    /// Whether values of this kind are sampled (complex values can be large and are typed by their kind alone).
    public var isSampled: Bool { self != .complex }
}

/// A pipeline: one source table or view, how to read it, how its columns map to the panel, and where changes go.
///
/// Loaded from YAML (see docs/pipelines.md and fixtures/pipeline-example.yaml). Field names in YAML are
/// snake_case as below.
public struct Pipeline: Sendable, Codable, Equatable {
    public enum Kind: String, Sendable, Codable, CaseIterable { case participants, events }
    public enum Mode: String, Sendable, Codable, CaseIterable { case auto, cdf, watermark, snapshot }

    /// Where a first sync starts: `first` (the earliest version with change data), `latest` (a snapshot at the
    /// latest version, then change data onward), a version number, or an ISO timestamp.
    public enum Start: Sendable, Equatable, Codable {
        case first, latest
        case version(Int64)
        case timestamp(String)

        public init(from decoder: any Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let v = try? c.decode(Int64.self) {
                self = .version(v)
                return
            }
            let s = try c.decode(String.self)
            switch s.lowercased() {
            case "first": self = .first
            case "latest": self = .latest
            default:
                if let v = Int64(s) { self = .version(v) } else { self = .timestamp(s) }
            }
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.singleValueContainer()
            switch self {
            case .first: try c.encode("first")
            case .latest: try c.encode("latest")
            case .version(let v): try c.encode(v)
            case .timestamp(let t): try c.encode(t)
            }
        }
    }

    /// How to reach the warehouse: a saved connection's name, or inline settings whose secrets come from
    /// environment variables.
    public struct ConnectionRef: Sendable, Codable, Equatable {
        public var name: String?
        public var host: String?
        public var warehouseID: String?
        public var httpPath: String?
        public var tokenEnv: String?
        public var clientIDEnv: String?
        public var clientSecretEnv: String?

        enum CodingKeys: String, CodingKey, CaseIterable {
            case name, host
            case warehouseID = "warehouse_id"
            case httpPath = "http_path"
            case tokenEnv = "token_env"
            case clientIDEnv = "client_id_env"
            case clientSecretEnv = "client_secret_env"
        }

        public init(name: String? = nil, host: String? = nil, warehouseID: String? = nil, httpPath: String? = nil,
                    tokenEnv: String? = nil, clientIDEnv: String? = nil, clientSecretEnv: String? = nil) {
            self.name = name
            self.host = host
            self.warehouseID = warehouseID
            self.httpPath = httpPath
            self.tokenEnv = tokenEnv
            self.clientIDEnv = clientIDEnv
            self.clientSecretEnv = clientSecretEnv
        }

        /// A bare string is the name of a saved connection.
        public init(from decoder: any Decoder) throws {
            if let s = try? decoder.singleValueContainer().decode(String.self) {
                self.init(name: s)
                return
            }
            let c = try decoder.container(keyedBy: CodingKeys.self)
            self.init(
                name: try c.decodeIfPresent(String.self, forKey: .name), host: try c.decodeIfPresent(String.self, forKey: .host),
                warehouseID: try c.decodeIfPresent(String.self, forKey: .warehouseID),
                httpPath: try c.decodeIfPresent(String.self, forKey: .httpPath),
                tokenEnv: try c.decodeIfPresent(String.self, forKey: .tokenEnv),
                clientIDEnv: try c.decodeIfPresent(String.self, forKey: .clientIDEnv),
                clientSecretEnv: try c.decodeIfPresent(String.self, forKey: .clientSecretEnv))
        }

        /// A saved connection's name, or the inline settings.
        static let shape = PipelineShape.either(.scalar, .object(CodingKeys.allCases.map { ($0.stringValue, .scalar) }))
    }

    /// A custom attribute: a column copied into `attributes.<name>` with a type.
    public struct Attribute: Sendable, Codable, Equatable {
        public enum ValueType: String, Sendable, Codable, CaseIterable {
            case string, integer, decimal, double, boolean, date, timestamp, json
        }
        public var column: String
        public var name: String?
        public var type: ValueType

        enum CodingKeys: String, CodingKey, CaseIterable { case column, name, type }

        static let shape = PipelineShape.object(CodingKeys.allCases.map { ($0.stringValue, .scalar) })

        public init(column: String, name: String? = nil, type: ValueType = .string) {
            self.column = column
            self.name = name
            self.type = type
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            column = try c.decode(String.self, forKey: .column)
            name = try c.decodeIfPresent(String.self, forKey: .name)
            type = try c.decodeIfPresent(ValueType.self, forKey: .type) ?? .string
        }

        public var outputName: String { name ?? column }
    }

    public struct Consent: Sendable, Codable, Equatable {
        /// The column holding the consent status (default: the `consent_status` mapping).
        public var column: String?
        /// Values that mean opted in (compared trimmed and case-insensitively).
        public var optedIn: [String]

        enum CodingKeys: String, CodingKey, CaseIterable {
            case column
            case optedIn = "opted_in"
        }

        static let shape = PipelineShape.object(CodingKeys.allCases.map { key in
            switch key {
            case .column: (key.stringValue, .scalar)
            case .optedIn: (key.stringValue, .list(.scalar))
            }
        })

        public init(column: String? = nil, optedIn: [String]) {
            self.column = column
            self.optedIn = optedIn
        }
    }

    /// A structured filter; values are always bound as parameters, never spliced into SQL.
    public struct Filter: Sendable, Codable, Equatable {
        public enum Operator: String, Sendable, Codable, CaseIterable {
            case eq, ne, lt, le, gt, ge
            case `in`, notIn = "not_in"
            case isNull = "is_null", isNotNull = "is_not_null"
            case like
        }
        public var column: String
        public var op: Operator
        public var value: FilterValue?

        enum CodingKeys: String, CodingKey, CaseIterable { case column, op, value }

        static let shape = PipelineShape.object(CodingKeys.allCases.map { key in
            switch key {
            case .column, .op: (key.stringValue, .scalar)
            case .value: (key.stringValue, .either(.scalar, .list(.scalar)))
            }
        })

        public init(column: String, op: Operator, value: FilterValue? = nil) {
            self.column = column
            self.op = op
            self.value = value
        }
    }

    /// A filter operand: one scalar or a list (for `in` / `not_in`), kept as text.
    public enum FilterValue: Sendable, Codable, Equatable {
        case scalar(String)
        case list([String])

        public init(from decoder: any Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let l = try? c.decode([String].self) {
                self = .list(l)
            } else if let s = try? c.decode(String.self) {
                self = .scalar(s)
            } else if let i = try? c.decode(Int64.self) {
                self = .scalar(String(i))
            } else if let d = try? c.decode(Double.self) {
                self = .scalar(String(d))
            } else if let b = try? c.decode(Bool.self) {
                self = .scalar(b ? "true" : "false")
            } else {
                throw DecodingError.dataCorruptedError(in: c, debugDescription: "filter value must be a scalar or a list")
            }
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.singleValueContainer()
            switch self {
            case .scalar(let s): try c.encode(s)
            case .list(let l): try c.encode(l)
            }
        }
    }

    public struct Validation: Sendable, Codable, Equatable {
        /// Panel fields that must be present and valid.
        public var required: [String]
        /// Abort the run when invalid rows exceed this fraction of rows read (checked after 100 rows).
        public var maxInvalidRatio: Double
        /// Region for phone numbers written without a country code (ISO alpha-2).
        public var defaultPhoneRegion: String?

        enum CodingKeys: String, CodingKey, CaseIterable {
            case required
            case maxInvalidRatio = "max_invalid_ratio"
            case defaultPhoneRegion = "default_phone_region"
        }

        static let shape = PipelineShape.object(CodingKeys.allCases.map { key in
            switch key {
            case .required: (key.stringValue, .list(.scalar))
            case .maxInvalidRatio, .defaultPhoneRegion: (key.stringValue, .scalar)
            }
        })

        /// The default of a pipeline of `kind` without a `validation` block: its key field is required.
        public static func defaults(for kind: Kind) -> Validation {
            Validation(required: [kind == .events ? "event_id" : "external_id"])
        }

        public init(required: [String] = ["external_id"], maxInvalidRatio: Double = 0.05, defaultPhoneRegion: String? = nil) {
            self.required = required
            self.maxInvalidRatio = maxInvalidRatio
            self.defaultPhoneRegion = defaultPhoneRegion
        }

        /// Without `required`, `external_id` is required; a pipeline of events requires `event_id` instead (see
        /// ``Pipeline/init(from:)``).
        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            required = try c.decodeIfPresent([String].self, forKey: .required) ?? ["external_id"]
            maxInvalidRatio = try c.decodeIfPresent(Double.self, forKey: .maxInvalidRatio) ?? 0.05
            defaultPhoneRegion = try c.decodeIfPresent(String.self, forKey: .defaultPhoneRegion)
        }
    }

    public struct Watermark: Sendable, Codable, Equatable {
        /// The cursor column (default: the `last_updated` mapping).
        public var column: String?
        /// Seconds to look back behind the stored watermark on each run (late-arriving rows).
        public var lookbackSeconds: Int
        public var pageSize: Int

        enum CodingKeys: String, CodingKey, CaseIterable {
            case column
            case lookbackSeconds = "lookback_seconds"
            case pageSize = "page_size"
        }

        static let shape = PipelineShape.object(CodingKeys.allCases.map { ($0.stringValue, .scalar) })

        public init(column: String? = nil, lookbackSeconds: Int = 0, pageSize: Int = 10_000) {
            self.column = column
            self.lookbackSeconds = lookbackSeconds
            self.pageSize = pageSize
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            column = try c.decodeIfPresent(String.self, forKey: .column)
            lookbackSeconds = try c.decodeIfPresent(Int.self, forKey: .lookbackSeconds) ?? 0
            pageSize = try c.decodeIfPresent(Int.self, forKey: .pageSize) ?? 10_000
        }
    }

    public struct Sink: Sendable, Codable, Equatable {
        public enum SinkType: String, Sendable, Codable, CaseIterable { case ndjson, webhook }
        public var type: SinkType
        /// ndjson: the directory of the segments.
        public var directory: String?
        /// ndjson: rotate segments at this many uncompressed bytes.
        public var segmentMaxBytes: Int?
        /// webhook: the URL batches are POSTed to.
        public var url: String?
        /// webhook: changes per POST.
        public var batchSize: Int?
        /// webhook: name of an environment variable with a bearer token for the endpoint.
        public var tokenEnv: String?
        /// ndjson: the mode of the delivered files as octal text (`"0640"`); default `0600`, owner only. The
        /// directories created for them get x where r is set (`0750`).
        public var fileMode: String?

        enum CodingKeys: String, CodingKey, CaseIterable {
            case type, directory, url
            case segmentMaxBytes = "segment_max_bytes"
            case batchSize = "batch_size"
            case tokenEnv = "token_env"
            case fileMode = "file_mode"
        }

        static let shape = PipelineShape.object(CodingKeys.allCases.map { ($0.stringValue, .scalar) })

        public init(type: SinkType, directory: String? = nil, segmentMaxBytes: Int? = nil, url: String? = nil,
                    batchSize: Int? = nil, tokenEnv: String? = nil, fileMode: String? = nil) {
            self.type = type
            self.directory = directory
            self.segmentMaxBytes = segmentMaxBytes
            self.url = url
            self.batchSize = batchSize
            self.tokenEnv = tokenEnv
            self.fileMode = fileMode
        }

        /// The permission bits `file_mode` gives (`"0640"`, `"640"` → `0o640`): octal, read and write bits only,
        /// the owner's read and write included (delivery rewrites its files); nil when absent.
        /// - Throws: the problem, as text naming the value.
        public func parsedFileMode() throws(PipelineProblem) -> UInt32? {
            guard let text = fileMode else { return nil }
            let bytes = Array(text.utf8)
            let octal = bytes.allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "7") }
            guard octal, bytes.count == 3 || (bytes.count == 4 && bytes.first == UInt8(ascii: "0")),
                let value = UInt32(text, radix: 8)
            else { throw PipelineProblem("'\(text)' is not an octal file mode such as \"0600\" or \"0640\"") }
            guard value & 0o111 == 0 else {
                throw PipelineProblem("'\(text)' sets execute bits; give read and write bits only (e.g. \"0640\")")
            }
            guard value & 0o600 == 0o600 else {
                throw PipelineProblem(
                    "'\(text)' does not let the owner read and write the files (delivery rewrites them)")
            }
            return value
        }
    }

    public enum Schedule: String, Sendable, Codable, CaseIterable {
        case every15Minutes = "15m", hourly, daily

        public var seconds: Int {
            switch self {
            case .every15Minutes: 900
            case .hourly: 3600
            case .daily: 86_400
            }
        }
    }

    public var name: String
    public var connection: ConnectionRef
    /// The source table or view, `catalog.schema.table`; for a custom SQL source (``sourceSQL``),
    /// ``customSQLSourceLabel``.
    public var source: String
    /// The query of a custom SQL source (`source: {sql: "SELECT …"}`), as written; nil for a table or view. The
    /// engine reads it only through ``ReadOnlySQLGuard``, and only in `watermark` and `snapshot` mode.
    public var sourceSQL: String?
    public var kind: Kind
    public var mode: Mode
    public var start: Start
    /// Panel field (or event field) → source column.
    public var mapping: [String: String]
    public var attributes: [Attribute]
    public var consent: Consent?
    public var filters: [Filter]
    public var validation: Validation
    public var watermark: Watermark?
    public var sinks: [Sink]
    public var schedule: Schedule?
    /// For events: the scope (a participants pipeline's name) whose external ids `user_id` refers to.
    public var identityPipeline: String?
    /// Directory of the LMDB state (default: `.cdfsync/state`).
    public var stateDir: String?
    /// What each newly imported, eligible participant gets (default `import`: nothing more; see ``Activation``).
    public var activation: Activation = .importOnly

    enum CodingKeys: String, CodingKey, CaseIterable {
        case name, connection, source, kind, mode, start, mapping, attributes, consent, filters, validation,
            watermark, sinks, schedule, activation
        case identityPipeline = "identity_pipeline"
        case stateDir = "state_dir"
    }

    /// What a pipeline file may hold, from the types' coding keys (an exhaustive switch: a field added to the
    /// keys without a shape does not compile). The loader refuses a key that is not here, at every level.
    public static let shape = PipelineShape.object(CodingKeys.allCases.map { key in
        let shape: PipelineShape
        switch key {
        case .source: shape = .either(.scalar, .object([("sql", .scalar)]))
        case .name, .kind, .mode, .start, .schedule, .identityPipeline, .stateDir: shape = .scalar
        case .connection: shape = ConnectionRef.shape
        case .mapping: shape = .dictionary(.scalar)
        case .attributes: shape = .list(Attribute.shape)
        case .consent: shape = Consent.shape
        case .filters: shape = .list(Filter.shape)
        case .validation: shape = Validation.shape
        case .watermark: shape = Watermark.shape
        case .sinks: shape = .list(Sink.shape)
        case .activation: shape = Activation.shape
        }
        return (key.stringValue, shape)
    })

    public init(name: String, connection: ConnectionRef, source: String, kind: Kind = .participants, mode: Mode = .auto,
                start: Start = .first, mapping: [String: String], attributes: [Attribute] = [], consent: Consent? = nil,
                filters: [Filter] = [], validation: Validation = Validation(), watermark: Watermark? = nil,
                sinks: [Sink] = [], schedule: Schedule? = nil, identityPipeline: String? = nil, stateDir: String? = nil,
                activation: Activation = .importOnly) {
        self.name = name
        self.connection = connection
        self.source = source
        self.kind = kind
        self.mode = mode
        self.start = start
        self.mapping = mapping
        self.attributes = attributes
        self.consent = consent
        self.filters = filters
        self.validation = validation
        self.watermark = watermark
        self.sinks = sinks
        self.schedule = schedule
        self.identityPipeline = identityPipeline
        self.stateDir = stateDir
        self.activation = activation
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        connection = try c.decode(ConnectionRef.self, forKey: .connection)
        if let table = try? c.decode(String.self, forKey: .source) {
            source = table
        } else {
            // `source: {sql: "SELECT …"}`: a custom SQL source.
            let custom = try c.nestedContainer(keyedBy: CustomSQLKeys.self, forKey: .source)
            sourceSQL = try custom.decode(String.self, forKey: .sql)
            source = Self.customSQLSourceLabel
        }
        kind = try c.decodeIfPresent(Kind.self, forKey: .kind) ?? .participants
        mode = try c.decodeIfPresent(Mode.self, forKey: .mode) ?? .auto
        start = try c.decodeIfPresent(Start.self, forKey: .start) ?? .first
        mapping = try c.decode([String: String].self, forKey: .mapping)
        attributes = try c.decodeIfPresent([Attribute].self, forKey: .attributes) ?? []
        consent = try c.decodeIfPresent(Consent.self, forKey: .consent)
        filters = try c.decodeIfPresent([Filter].self, forKey: .filters) ?? []
        if let v = try c.decodeIfPresent(Validation.self, forKey: .validation) {
            validation = v
            // A validation block without `required` gets the default of the pipeline's kind too.
            if try !c.nestedContainer(keyedBy: Validation.CodingKeys.self, forKey: .validation).contains(.required) {
                validation.required = Validation.defaults(for: kind).required
            }
        } else {
            validation = Validation.defaults(for: kind)
        }
        watermark = try c.decodeIfPresent(Watermark.self, forKey: .watermark)
        sinks = try c.decodeIfPresent([Sink].self, forKey: .sinks) ?? []
        schedule = try c.decodeIfPresent(Schedule.self, forKey: .schedule)
        identityPipeline = try c.decodeIfPresent(String.self, forKey: .identityPipeline)
        stateDir = try c.decodeIfPresent(String.self, forKey: .stateDir)
        activation = try c.decodeIfPresent(Activation.self, forKey: .activation) ?? .importOnly
    }

    /// Panel fields a participants mapping may name.
    public static let participantFields = [
        "external_id", "first_name", "last_name", "email", "phone", "company", "country", "city", "job_title",
        "segment", "consent_status", "last_updated",
    ]
    /// Fields an events mapping may name.
    public static let eventFields = ["event_id", "name", "timestamp", "user_id"]

    /// The longest name ``staticProblems(maxNameBytes:)`` accepts unless told otherwise: half of LMDB's default
    /// 511-byte key limit (the engine passes the limit it derives from the store's keys).
    public static let defaultMaxNameBytes = 255

    /// Problems visible without the warehouse, one message per field, each naming it.
    ///
    /// - Parameter maxNameBytes: the longest `name` (and `identity_pipeline`) the state store can key by.
    public func staticProblems(maxNameBytes: Int = Pipeline.defaultMaxNameBytes) -> [String] {
        var p: [String] = []
        if let problem = Self.nameProblem(name, maxBytes: maxNameBytes) { p.append("name: \(problem)") }
        if let i = identityPipeline, let problem = Self.nameProblem(i, maxBytes: maxNameBytes) {
            p.append("identity_pipeline: \(problem)")
        }
        if let sql = sourceSQL {
            p += customSQLProblems(sql)
        } else if (try? QualifiedName(parsing: source)) == nil {
            p.append("source: '\(source)' must be catalog.schema.table")
        }
        if connection.name != nil && (connection.host != nil || connection.warehouseID != nil || connection.httpPath != nil) {
            p.append("connection: give either a saved connection name or inline settings, not both")
        }
        switch start {
        case .version(let v) where v < 0:
            p.append("start: \(v) is not a version (Delta versions start at 0)")
        case .timestamp(let t) where Timestamps.micros(t) == nil:
            p.append("start: '\(t)' is not first, latest, a version or an ISO timestamp (e.g. 2026-03-01T00:00:00Z)")
        default: break
        }
        let allowed = kind == .participants ? Self.participantFields : Self.eventFields
        for (field, column) in mapping.sorted(by: { $0.key < $1.key }) {
            if !allowed.contains(field) {
                p.append("mapping.\(field): not a \(kind.rawValue) field (allowed: \(allowed.joined(separator: ", ")))")
            }
            if column.isEmpty { p.append("mapping.\(field): column name is empty") }
        }
        let key = kind == .participants ? "external_id" : "event_id"
        if mapping[key] == nil { p.append("mapping.\(key): required for a \(kind.rawValue) pipeline") }
        for f in validation.required where !allowed.contains(f) {
            p.append("validation.required: '\(f)' is not a \(kind.rawValue) field")
        }
        if !(0...1).contains(validation.maxInvalidRatio) { p.append("validation.max_invalid_ratio: must be between 0 and 1") }
        if let r = validation.defaultPhoneRegion, Normalize.callingCodes[r.uppercased()] == nil {
            p.append("validation.default_phone_region: '\(r)' is not a supported region")
        }
        if let c = consent {
            if c.optedIn.isEmpty { p.append("consent.opted_in: list at least one opted-in value") }
            if c.column == nil && mapping["consent_status"] == nil {
                p.append("consent.column: give the column, or map consent_status")
            }
        }
        for (i, f) in filters.enumerated() {
            switch f.op {
            case .isNull, .isNotNull:
                if f.value != nil { p.append("filters[\(i)].value: \(f.op.rawValue) takes no value") }
            case .in, .notIn:
                if case .list(let l)? = f.value, !l.isEmpty {} else { p.append("filters[\(i)].value: \(f.op.rawValue) needs a non-empty list") }
            default:
                if case .scalar? = f.value {} else { p.append("filters[\(i)].value: \(f.op.rawValue) needs one value") }
            }
        }
        var names = Set<String>()
        for a in attributes where !names.insert(a.outputName).inserted { p.append("attributes: '\(a.outputName)' appears twice") }
        if mode == .watermark && (watermark?.column ?? mapping["last_updated"]) == nil {
            p.append("watermark.column: watermark mode needs a cursor column (or map last_updated)")
        }
        if let w = watermark, w.pageSize < 1 || w.pageSize > 1_000_000 { p.append("watermark.page_size: must be 1…1000000") }
        if let w = watermark, w.lookbackSeconds < 0 { p.append("watermark.lookback_seconds: must be 0 or more") }
        for (i, s) in sinks.enumerated() {
            if let n = s.segmentMaxBytes, n < 1 { p.append("sinks[\(i)].segment_max_bytes: must be at least 1") }
            if let n = s.batchSize, n < 1 { p.append("sinks[\(i)].batch_size: must be at least 1") }
            switch s.type {
            case .ndjson:
                if s.directory == nil { p.append("sinks[\(i)].directory: an ndjson sink needs a directory") }
                do {
                    _ = try s.parsedFileMode()
                } catch {
                    p.append("sinks[\(i)].file_mode: \(error.message)")
                }
            case .webhook:
                // The URL itself is checked by the engine, which parses it as libcurl will (PipelineLoader).
                if s.url == nil { p.append("sinks[\(i)].url: a webhook needs a URL") }
                if s.fileMode != nil {
                    p.append("sinks[\(i)].file_mode: applies to an ndjson sink's files, not a webhook")
                }
            }
        }
        p += activation.problems(of: self)
        if kind == .events && identityPipeline == nil && mapping["user_id"] != nil {
            p.append("identity_pipeline: name the participants pipeline whose external ids user_id refers to")
        }
        return p
    }
}

extension Pipeline {
    /// What each newly imported, eligible participant gets (docs/activation.md): nothing beyond the import
    /// (`activation: import`, the default), a place in a named pool (`pool: NAME`), or an invitation to a study or a
    /// task (`invite_study: ID`, `invite_task: ID`), optionally only when the participant's panel fields meet
    /// `eligibility` conditions.
    ///
    /// In YAML either the word `import` or a mapping:
    /// ```yaml
    /// activation:
    ///   invite_study: S-2026-04
    ///   eligibility:
    ///     - field: country
    ///       op: in
    ///       value: [GB, IE]
    ///   webhook:
    ///     url: https://platform.example.com/hooks/invitations
    ///     token_env: PLATFORM_TOKEN
    /// ```
    public struct Activation: Sendable, Codable, Equatable {
        /// A named participant pool.
        public var pool: String?
        /// A study's id: eligible participants are invited to it.
        public var inviteStudy: String?
        /// A task's id: eligible participants are invited to it.
        public var inviteTask: String?
        /// Conditions on panel fields, all of which an eligible participant's record meets.
        public var eligibility: [Condition]
        /// Where the invitation files go (default: `invitations` inside the pipeline's output directory).
        public var directory: String?
        /// Where each invitation is also POSTed, with an `Idempotency-Key` per (participant, target).
        public var webhook: Webhook?

        /// `activation: import`: nothing but the import.
        public static let importOnly = Activation()

        public init(pool: String? = nil, inviteStudy: String? = nil, inviteTask: String? = nil,
                    eligibility: [Condition] = [], directory: String? = nil, webhook: Webhook? = nil) {
            self.pool = pool
            self.inviteStudy = inviteStudy
            self.inviteTask = inviteTask
            self.eligibility = eligibility
            self.directory = directory
            self.webhook = webhook
        }

        enum CodingKeys: String, CodingKey, CaseIterable {
            case pool
            case inviteStudy = "invite_study"
            case inviteTask = "invite_task"
            case eligibility, directory, webhook
        }

        /// The word `import`, or a mapping of the fields above.
        static let shape = PipelineShape.either(.scalar, .object(CodingKeys.allCases.map { key in
            switch key {
            case .pool, .inviteStudy, .inviteTask, .directory: (key.stringValue, .scalar)
            case .eligibility: (key.stringValue, .list(Condition.shape))
            case .webhook: (key.stringValue, Webhook.shape)
            }
        }))

        public init(from decoder: any Decoder) throws {
            if let word = try? decoder.singleValueContainer().decode(String.self) {
                guard word.lowercased() == "import" else {
                    throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                        debugDescription: "'\(word)' is not an activation; write import, or a mapping with pool, "
                            + "invite_study or invite_task"))
                }
                self.init()
                return
            }
            let c = try decoder.container(keyedBy: CodingKeys.self)
            func text(_ key: CodingKeys) throws -> String? {
                if let s = try? c.decodeIfPresent(String.self, forKey: key) { return s }
                // An id written as a number (`invite_study: 42`) is its text.
                if let n = try? c.decodeIfPresent(Int64.self, forKey: key) { return String(n) }
                return try c.decodeIfPresent(String.self, forKey: key)
            }
            self.init(
                pool: try text(.pool), inviteStudy: try text(.inviteStudy), inviteTask: try text(.inviteTask),
                eligibility: try c.decodeIfPresent([Condition].self, forKey: .eligibility) ?? [],
                directory: try c.decodeIfPresent(String.self, forKey: .directory),
                webhook: try c.decodeIfPresent(Webhook.self, forKey: .webhook))
        }

        public func encode(to encoder: any Encoder) throws {
            guard target != nil || !eligibility.isEmpty || directory != nil || webhook != nil else {
                var c = encoder.singleValueContainer()
                try c.encode("import")
                return
            }
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encodeIfPresent(pool, forKey: .pool)
            try c.encodeIfPresent(inviteStudy, forKey: .inviteStudy)
            try c.encodeIfPresent(inviteTask, forKey: .inviteTask)
            if !eligibility.isEmpty { try c.encode(eligibility, forKey: .eligibility) }
            try c.encodeIfPresent(directory, forKey: .directory)
            try c.encodeIfPresent(webhook, forKey: .webhook)
        }

        /// What an eligible participant gets, or nil for `import` (or a file naming more than one: a problem).
        public var target: ActivationTarget? {
            let given = [
                pool.map { ActivationTarget(kind: .pool, id: $0) },
                inviteStudy.map { ActivationTarget(kind: .study, id: $0) },
                inviteTask.map { ActivationTarget(kind: .task, id: $0) },
            ].compactMap { $0 }
            return given.count == 1 ? given[0] : nil
        }

        /// Whether this is `import`: nothing happens beyond the import.
        public var isImportOnly: Bool { pool == nil && inviteStudy == nil && inviteTask == nil }

        /// One condition on a panel field: `field` (`country`, `attributes.tier`), an operator of the filters'
        /// (``Pipeline/Filter/Operator``), and its operand.
        public struct Condition: Sendable, Codable, Equatable {
            public var field: String
            public var op: Filter.Operator
            public var value: FilterValue?

            enum CodingKeys: String, CodingKey, CaseIterable { case field, op, value }

            static let shape = PipelineShape.object(CodingKeys.allCases.map { key in
                switch key {
                case .field, .op: (key.stringValue, .scalar)
                case .value: (key.stringValue, .either(.scalar, .list(.scalar)))
                }
            })

            public init(field: String, op: Filter.Operator, value: FilterValue? = nil) {
                self.field = field
                self.op = op
                self.value = value
            }

            /// The condition as one phrase: `country in [GB, IE]`, `attributes.age ge 18`, `company is_not_null`.
            public var description: String {
                switch value {
                case .scalar(let s)?: "\(field) \(op.rawValue) \(s)"
                case .list(let l)?: "\(field) \(op.rawValue) [\(l.joined(separator: ", "))]"
                case nil: "\(field) \(op.rawValue)"
                }
            }
        }

        /// Where invitations are POSTed: a URL (https, or http to loopback) and the environment variable of a
        /// bearer token.
        public struct Webhook: Sendable, Codable, Equatable {
            public var url: String
            public var tokenEnv: String?

            enum CodingKeys: String, CodingKey, CaseIterable {
                case url
                case tokenEnv = "token_env"
            }

            static let shape = PipelineShape.object(CodingKeys.allCases.map { ($0.stringValue, .scalar) })

            public init(url: String, tokenEnv: String? = nil) {
                self.url = url
                self.tokenEnv = tokenEnv
            }
        }

        /// The longest target id (UTF-8 bytes): ids key the invitation ledger, whose keys must fit LMDB's limit.
        public static let maxTargetIDBytes = 128

        /// Problems of the activation block, each naming its field (`activation.invite_study: …`).
        func problems(of pipeline: Pipeline) -> [String] {
            var p: [String] = []
            let given = [("pool", pool), ("invite_study", inviteStudy), ("invite_task", inviteTask)]
                .filter { $0.1 != nil }
            if given.count > 1 {
                p.append("activation.\(given[1].0): give one of pool, invite_study or invite_task, not "
                    + given.map(\.0).joined(separator: " and "))
            }
            for (field, id) in given {
                if let problem = ActivationTarget.idProblem(id!) { p.append("activation.\(field): \(problem)") }
            }
            if isImportOnly {
                if !eligibility.isEmpty {
                    p.append("activation.eligibility: applies to a pool or an invitation; give pool, invite_study or "
                        + "invite_task (or remove the conditions)")
                }
                if webhook != nil || directory != nil {
                    p.append("activation.\(webhook != nil ? "webhook" : "directory"): there is nothing to deliver "
                        + "without pool, invite_study or invite_task")
                }
                return p
            }
            if pipeline.kind == .events {
                p.append("activation: applies to a participants pipeline; events are not invited")
                return p
            }
            if pipeline.mapping["email"] == nil && pipeline.mapping["phone"] == nil {
                p.append("activation: map email or phone: a participant without either is not contactable, so "
                    + "nobody would be eligible")
            }
            let attributes = Set(pipeline.attributes.map(\.outputName))
            for (i, c) in eligibility.enumerated() {
                let at = "activation.eligibility[\(i)]"
                if let problem = ActivationRule.fieldProblem(c.field, pipeline: pipeline, attributes: attributes) {
                    p.append("\(at).field: \(problem)")
                }
                switch c.op {
                case .isNull, .isNotNull:
                    if c.value != nil { p.append("\(at).value: \(c.op.rawValue) takes no value") }
                case .in, .notIn:
                    if case .list(let l)? = c.value, !l.isEmpty {} else {
                        p.append("\(at).value: \(c.op.rawValue) needs a non-empty list")
                    }
                default:
                    if case .scalar? = c.value {} else { p.append("\(at).value: \(c.op.rawValue) needs one value") }
                }
                if c.field == "country" {
                    for v in c.value?.values ?? [] {
                        if case .invalid(let why) = Normalize.country(v) {
                            p.append("\(at).value: \(why) (the panel holds countries as ISO 3166-1 alpha-2 codes)")
                        }
                    }
                }
            }
            if let w = webhook, w.url.isEmpty { p.append("activation.webhook.url: give the URL invitations go to") }
            if let d = directory, d.isEmpty { p.append("activation.directory: must not be empty") }
            return p
        }
    }
}

extension Pipeline.FilterValue {
    /// The operand's values: one, or the list's.
    public var values: [String] {
        switch self {
        case .scalar(let s): [s]
        case .list(let l): l
        }
    }
}

/// What an activation gives: a place in a pool, or an invitation to a study or a task, with its id.
public struct ActivationTarget: Sendable, Hashable, Codable {
    public enum Kind: String, Sendable, Codable, CaseIterable {
        case pool, study, task
    }

    public var kind: Kind
    public var id: String

    public init(kind: Kind, id: String) {
        self.kind = kind
        self.id = id
    }

    /// `study:S-42`: how the ledger and the run records name the target.
    public var key: String { "\(kind.rawValue):\(id)" }

    /// Parses ``key``.
    public init?(key: String) {
        guard let colon = key.firstIndex(of: ":"), let kind = Kind(rawValue: String(key[..<colon])) else { return nil }
        self.init(kind: kind, id: String(key[key.index(after: colon)...]))
    }

    /// Whether an operator must confirm before anything is sent (an invitation contacts people; a pool does not).
    public var requiresConfirmation: Bool { kind != .pool }

    /// `invite to study S-42`, `add to pool early-birds`.
    public var description: String {
        switch kind {
        case .pool: "add to pool \(id)"
        case .study: "invite to study \(id)"
        case .task: "invite to task \(id)"
        }
    }

    /// Why `id` cannot name a pool, study or task, or nil: not empty, at most
    /// ``Pipeline/Activation/maxTargetIDBytes`` bytes, no control characters.
    public static func idProblem(_ id: String) -> String? {
        if id.trimmingWhitespace().isEmpty { return "the id must not be empty" }
        if id.utf8.count > Pipeline.Activation.maxTargetIDBytes {
            return "the id is \(id.utf8.count) bytes; at most \(Pipeline.Activation.maxTargetIDBytes)"
        }
        if id.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) {
            return "the id holds a control character"
        }
        return nil
    }
}

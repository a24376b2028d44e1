//! The default rubric's data, shared by the library and its build script
//! (which precomputes the pattern index, so a fresh instance per document
//! pays nothing to set it up). Spanish and English patterns, as written:
//! matching lowercases them.

/// A criterion: id, title, patterns.
pub type CriterionData = (&'static str, &'static str, &'static [&'static str]);

/// Words that state goals or targets.
pub const GOALS: &[&str] = &["meta", "metas", "target", "targets", "goal", "goals"];

/// Ten points of 10 each.
pub const POINTS: &[CriterionData] = &[
    (
        "P01",
        "Diagnosis of the current situation",
        &[
            "diagnóstico",
            "diagnostico",
            "situación actual",
            "problemática",
            "diagnosis",
            "current situation",
            "problem statement",
        ],
    ),
    (
        "P02",
        "Vision and strategic objectives",
        &[
            "visión",
            "objetivo general",
            "objetivos estratégicos",
            "vision",
            "strategic objectives",
            "general objective",
        ],
    ),
    (
        "P03",
        "Targets and indicators",
        &[
            "metas",
            "indicadores",
            "indicador",
            "targets",
            "indicators",
            "indicator",
        ],
    ),
    (
        "P04",
        "Baselines",
        &[
            "línea base",
            "linea base",
            "línea de base",
            "baseline",
            "baselines",
            "punto de partida",
            "starting point",
        ],
    ),
    (
        "P05",
        "Budget and financing",
        &[
            "presupuesto",
            "plan de inversiones",
            "plan plurianual de inversiones",
            "financiación",
            "financiamiento",
            "budget",
            "investment plan",
            "funding",
            "financing",
        ],
    ),
    (
        "P06",
        "Citizen participation",
        &[
            "participación ciudadana",
            "consulta pública",
            "mesas de trabajo",
            "citizen participation",
            "public consultation",
            "stakeholder*",
            "community engagement",
        ],
    ),
    (
        "P07",
        "Differential approach and gender equality",
        &[
            "enfoque diferencial",
            "equidad de género",
            "igualdad de género",
            "población vulnerable",
            "gender equality",
            "vulnerable groups",
            "inclusion",
        ],
    ),
    (
        "P08",
        "Environmental sustainability",
        &[
            "ambiental",
            "cambio climático",
            "sostenibilidad",
            "medio ambiente",
            "environmental",
            "climate change",
            "sustainability",
        ],
    ),
    (
        "P09",
        "Monitoring and evaluation",
        &[
            "seguimiento",
            "evaluación",
            "monitoreo",
            "rendición de cuentas",
            "monitoring",
            "evaluation",
            "accountability",
        ],
    ),
    (
        "P10",
        "Alignment with national and global agendas",
        &[
            "plan nacional de desarrollo",
            "objetivos de desarrollo sostenible",
            "ODS",
            "national development plan",
            "sustainable development goals",
            "SDG*",
        ],
    ),
];

/// Thirty questions of 2 points each.
pub const QUESTIONS: &[CriterionData] = &[
    (
        "Q01",
        "Is the planning horizon stated?",
        &[
            "cuatrienio",
            "periodo de gobierno",
            "four-year",
            "planning horizon",
        ],
    ),
    (
        "Q02",
        "Is the population described?",
        &["habitantes", "inhabitants", "population"],
    ),
    ("Q03", "Is poverty addressed?", &["pobreza", "poverty"]),
    (
        "Q04",
        "Is education addressed?",
        &["educación", "education"],
    ),
    ("Q05", "Is health addressed?", &["salud", "health"]),
    (
        "Q06",
        "Are water and sanitation addressed?",
        &[
            "agua potable",
            "saneamiento",
            "drinking water",
            "sanitation",
        ],
    ),
    (
        "Q07",
        "Is employment addressed?",
        &["empleo", "desempleo", "employment", "unemployment"],
    ),
    (
        "Q08",
        "Is public safety addressed?",
        &[
            "seguridad ciudadana",
            "convivencia",
            "public safety",
            "crime",
        ],
    ),
    ("Q09", "Is housing addressed?", &["vivienda", "housing"]),
    (
        "Q10",
        "Are roads and mobility addressed?",
        &["vías", "movilidad", "roads", "mobility"],
    ),
    (
        "Q11",
        "Is rural development addressed?",
        &["rural", "campesin*", "agricultur*"],
    ),
    (
        "Q12",
        "Are children and youth addressed?",
        &["niñez", "juventud", "jóvenes", "children", "youth"],
    ),
    (
        "Q13",
        "Are older adults addressed?",
        &["adulto mayor", "adultos mayores", "older adults", "elderly"],
    ),
    (
        "Q14",
        "Is disability addressed?",
        &["discapacidad", "disability", "disabilities"],
    ),
    (
        "Q15",
        "Are victims and peacebuilding addressed?",
        &[
            "víctimas",
            "construcción de paz",
            "victims",
            "peacebuilding",
        ],
    ),
    (
        "Q16",
        "Are ethnic groups addressed?",
        &[
            "étnic*",
            "indígena*",
            "afrodescendiente*",
            "ethnic",
            "indigenous",
        ],
    ),
    (
        "Q17",
        "Is disaster risk addressed?",
        &["gestión del riesgo", "riesgo de desastres", "disaster risk"],
    ),
    (
        "Q18",
        "Are culture and sport addressed?",
        &["cultura", "deporte", "culture", "sport", "sports"],
    ),
    (
        "Q19",
        "Is connectivity addressed?",
        &["conectividad", "internet", "connectivity"],
    ),
    (
        "Q20",
        "Is economic development addressed?",
        &[
            "desarrollo económico",
            "emprendimiento",
            "economic development",
            "entrepreneurship",
        ],
    ),
    ("Q21", "Is tourism addressed?", &["turismo", "tourism"]),
    (
        "Q22",
        "Is transparency addressed?",
        &[
            "transparencia",
            "gobierno abierto",
            "transparency",
            "open government",
        ],
    ),
    (
        "Q23",
        "Is institutional capacity addressed?",
        &[
            "fortalecimiento institucional",
            "capacidad institucional",
            "institutional capacity",
        ],
    ),
    (
        "Q24",
        "Are funding sources named?",
        &[
            "recursos propios",
            "sistema general de participaciones",
            "regalías",
            "own revenue",
            "transfers",
            "grants",
        ],
    ),
    (
        "Q25",
        "Is there a schedule?",
        &["cronograma", "timeline", "schedule"],
    ),
    (
        "Q26",
        "Are responsible agencies named?",
        &["responsable", "responsables", "responsible", "lead agency"],
    ),
    (
        "Q27",
        "Are targets quantified?",
        &["%", "por ciento", "percent"],
    ),
    (
        "Q28",
        "Are risks and assumptions stated?",
        &["riesgos", "supuestos", "risks", "assumptions"],
    ),
    ("Q29", "Is energy addressed?", &["energía", "energy"]),
    (
        "Q30",
        "Is land use addressed?",
        &[
            "espacio público",
            "ordenamiento territorial",
            "public space",
            "land use",
        ],
    ),
];

/// Sections a plan must have.
pub const SECTIONS: &[CriterionData] = &[
    (
        "diagnosis",
        "Diagnosis",
        &["diagnóstico", "diagnostico", "diagnosis"],
    ),
    (
        "objectives",
        "Objectives",
        &[
            "objetivos",
            "objetivo general",
            "objectives",
            "general objective",
        ],
    ),
    ("targets", "Targets", GOALS),
    (
        "budget",
        "Budget",
        &[
            "presupuesto",
            "plan de inversiones",
            "plan plurianual de inversiones",
            "financiación",
            "budget",
            "investment plan",
            "financing",
        ],
    ),
    (
        "monitoring",
        "Monitoring",
        &["seguimiento", "monitoreo", "monitoring"],
    ),
];

/// Words that name indicators.
pub const INDICATORS: &[&str] = &[
    "indicador",
    "indicadores",
    "indicator",
    "indicators",
    "KPI",
    "KPIs",
];

/// Words that name baselines.
pub const BASELINES: &[&str] = &[
    "línea base",
    "linea base",
    "línea de base",
    "baseline",
    "baselines",
];

/// Money amounts and currencies.
pub const AMOUNTS: &[&str] = &[
    "$", "€", "COP", "USD", "EUR", "millones", "million", "millions",
];

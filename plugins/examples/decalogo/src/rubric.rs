//! The default rubric: ten points, thirty questions, five required sections
//! and the signals behind the warnings, with Spanish and English patterns.
//!
//! Pattern rules: matching ignores ASCII case (and all-caps variants of
//! accented words are added); a pattern must start on a word boundary when
//! it starts with a letter or digit, and end on one when it ends with a
//! letter or digit — unless it ends with `*`, which makes it a prefix
//! (`campesin*` matches `campesinos`).

use serde::Deserialize;

/// One rubric point or questionnaire question.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Criterion {
    /// Stable id, e.g. `P03` or `Q17`.
    pub id: String,
    /// What it checks.
    pub title: String,
    /// Any of these counts as evidence.
    pub patterns: Vec<String>,
}

/// The whole rubric. Replace it with `{"rubric": {...}}` in the config.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rubric {
    /// Ten points of 10 each: 10 with two or more distinct patterns found,
    /// 5 with one, 0 with none.
    pub points: Vec<Criterion>,
    /// Questions of 2 points each: answered when any pattern is found.
    pub questions: Vec<Criterion>,
    /// Sections a plan must have: each one missing is a violation.
    pub sections: Vec<Criterion>,
    /// Words that state goals or targets.
    pub goals: Vec<String>,
    /// Words that name indicators.
    pub indicators: Vec<String>,
    /// Words that name baselines.
    pub baselines: Vec<String>,
    /// Money amounts and currencies (budget figures).
    pub amounts: Vec<String>,
}

fn owned(patterns: &[&str]) -> Vec<String> {
    patterns.iter().map(|p| (*p).to_owned()).collect()
}

fn criteria(rows: &[(&str, &str, &[&str])]) -> Vec<Criterion> {
    rows.iter()
        .map(|(id, title, patterns)| Criterion {
            id: (*id).to_owned(),
            title: (*title).to_owned(),
            patterns: owned(patterns),
        })
        .collect()
}

const GOALS: &[&str] = &["meta", "metas", "target", "targets", "goal", "goals"];

impl Default for Rubric {
    fn default() -> Self {
        Rubric {
            points: criteria(&[
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
            ]),
            questions: criteria(&[
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
            ]),
            sections: criteria(&[
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
            ]),
            goals: owned(GOALS),
            indicators: owned(&[
                "indicador",
                "indicadores",
                "indicator",
                "indicators",
                "KPI",
                "KPIs",
            ]),
            baselines: owned(&[
                "línea base",
                "linea base",
                "línea de base",
                "baseline",
                "baselines",
            ]),
            amounts: owned(&[
                "$", "€", "COP", "USD", "EUR", "millones", "million", "millions",
            ]),
        }
    }
}

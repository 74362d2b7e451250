//! [`PlanSchema`]: the columns of a plan node, with their qualifiers and time attributes.

use std::fmt;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::error::{PlanError, closest};
use crate::expr::Column;

/// Whether a column carries time for the runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeAttribute {
    /// The event-time column watermarks are derived from (`TIMESTAMP(3)`, a rowtime).
    EventTime,
    /// A processing-time column, filled from the job's clock.
    ProcessingTime,
}

/// One column of a plan node.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PlanField {
    /// The table (or alias) the column comes from, if any.
    pub qualifier: Option<Arc<str>>,
    /// The column's name.
    pub name: String,
    /// Its Arrow type.
    pub data_type: DataType,
    /// Whether it may hold nulls.
    pub nullable: bool,
    /// Whether it is a time attribute.
    pub time: Option<TimeAttribute>,
}

impl PlanField {
    /// An unqualified column.
    pub fn new(name: impl Into<String>, data_type: DataType, nullable: bool) -> Self {
        PlanField {
            qualifier: None,
            name: name.into(),
            data_type,
            nullable,
            time: None,
        }
    }

    /// The same column qualified by `qualifier`.
    pub fn with_qualifier(mut self, qualifier: Option<Arc<str>>) -> Self {
        self.qualifier = qualifier;
        self
    }

    /// The same column with the time attribute `time`.
    pub fn with_time(mut self, time: Option<TimeAttribute>) -> Self {
        self.time = time;
        self
    }

    /// `qualifier.name`, or `name`.
    pub fn qualified_name(&self) -> String {
        match &self.qualifier {
            Some(q) => format!("{q}.{}", self.name),
            None => self.name.clone(),
        }
    }

    /// The Arrow field.
    pub fn to_arrow(&self) -> Field {
        Field::new(&self.name, self.data_type.clone(), self.nullable)
    }
}

/// The columns of a plan node, and the primary key it is known to have (if any).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct PlanSchema {
    fields: Vec<PlanField>,
    primary_key: Option<Vec<usize>>,
}

/// A shared schema.
pub type PlanSchemaRef = Arc<PlanSchema>;

impl PlanSchema {
    /// A schema of these columns, without a key.
    pub fn new(fields: Vec<PlanField>) -> Self {
        PlanSchema {
            fields,
            primary_key: None,
        }
    }

    /// The columns of an Arrow schema, qualified by `qualifier`.
    pub fn from_arrow(schema: &Schema, qualifier: Option<&str>) -> Self {
        let qualifier: Option<Arc<str>> = qualifier.map(Arc::from);
        PlanSchema::new(
            schema
                .fields()
                .iter()
                .map(|f| {
                    PlanField::new(f.name(), f.data_type().clone(), f.is_nullable())
                        .with_qualifier(qualifier.clone())
                })
                .collect(),
        )
    }

    /// The same schema with the primary key at these column positions.
    pub fn with_primary_key(mut self, key: Option<Vec<usize>>) -> Self {
        self.primary_key = key;
        self
    }

    /// The columns.
    pub fn fields(&self) -> &[PlanField] {
        &self.fields
    }

    /// The column at `index`.
    pub fn field(&self, index: usize) -> &PlanField {
        &self.fields[index]
    }

    /// The number of columns.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether there are no columns.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The primary key's column positions, if the node has one.
    pub fn primary_key(&self) -> Option<&[usize]> {
        self.primary_key.as_deref()
    }

    /// The column names, unqualified.
    pub fn names(&self) -> Vec<String> {
        self.fields.iter().map(|f| f.name.clone()).collect()
    }

    /// Every column requalified by `qualifier` (a table alias).
    pub fn requalified(&self, qualifier: &str) -> PlanSchema {
        let q: Arc<str> = Arc::from(qualifier);
        PlanSchema {
            fields: self
                .fields
                .iter()
                .map(|f| f.clone().with_qualifier(Some(Arc::clone(&q))))
                .collect(),
            primary_key: self.primary_key.clone(),
        }
    }

    /// The columns of `self` followed by those of `other` (a join's output).
    pub fn join(&self, other: &PlanSchema) -> PlanSchema {
        PlanSchema::new(self.fields.iter().chain(&other.fields).cloned().collect())
    }

    /// The position of `column`, or an error naming `operation` with the closest name.
    ///
    /// A column matches when its name equals and, if the reference is qualified, its qualifier
    /// does too. A reference `"a.b"` without an explicit qualifier is also tried as qualifier
    /// `a`, name `b`.
    pub fn index_of(&self, column: &Column, operation: &str) -> Result<usize, PlanError> {
        let matches = self.matching(column.relation.as_deref(), &column.name);
        let matches = if matches.is_empty() && column.relation.is_none() {
            match column.name.split_once('.') {
                Some((q, n)) => self.matching(Some(q), n),
                None => matches,
            }
        } else {
            matches
        };
        match matches.as_slice() {
            [index] => Ok(*index),
            [] => Err(PlanError::UnknownColumn {
                operation: operation.to_owned(),
                name: column.to_string(),
                suggestion: closest(&column.name, self.fields.iter().map(|f| f.name.as_str())),
                available: self.fields.iter().map(PlanField::qualified_name).collect(),
            }),
            several => Err(PlanError::AmbiguousColumn {
                operation: operation.to_owned(),
                name: column.to_string(),
                candidates: several
                    .iter()
                    .map(|&i| self.fields[i].qualified_name())
                    .collect(),
            }),
        }
    }

    fn matching(&self, qualifier: Option<&str>, name: &str) -> Vec<usize> {
        self.fields
            .iter()
            .enumerate()
            .filter(|(_, f)| {
                f.name == name
                    && match qualifier {
                        Some(q) => f.qualifier.as_deref() == Some(q),
                        None => true,
                    }
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// The Arrow schema of the node's batches (qualifiers and time attributes dropped).
    pub fn to_arrow(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.fields
                .iter()
                .map(PlanField::to_arrow)
                .collect::<Vec<_>>(),
        ))
    }

    /// Fails with [`PlanError::DuplicateOutputName`] when two columns share a name and
    /// qualifier.
    pub fn check_unique(&self, operation: &str) -> Result<(), PlanError> {
        let mut seen = std::collections::HashSet::new();
        for f in &self.fields {
            if !seen.insert((f.qualifier.clone(), f.name.as_str())) {
                return Err(PlanError::DuplicateOutputName {
                    operation: operation.to_owned(),
                    name: f.name.clone(),
                });
            }
        }
        Ok(())
    }
}

impl fmt::Display for PlanSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, field) in self.fields.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}: {}", field.name, field.data_type)?;
            if !field.nullable {
                f.write_str(" NOT NULL")?;
            }
            match field.time {
                Some(TimeAttribute::EventTime) => f.write_str(" *ROWTIME*")?,
                Some(TimeAttribute::ProcessingTime) => f.write_str(" *PROCTIME*")?,
                None => {}
            }
        }
        f.write_str("]")
    }
}

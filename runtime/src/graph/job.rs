//! The JobGraph: operators grouped into chains, with resolved parallelism and ship strategies.

use std::collections::HashMap;
use std::fmt::{self, Write};

use super::{NodeId, NodeKind, StreamGraph};
use crate::error::GraphError;
use crate::exchange::ShipStrategy;

/// A chain of operators that runs as one task: one thread per subtask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobVertex {
    /// The operators of the chain, head first.
    pub operators: Vec<NodeId>,
    /// The chain's parallelism.
    pub parallelism: usize,
}

/// A connection between two tasks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobEdge {
    /// The producing task.
    pub from: usize,
    /// The consuming task.
    pub to: usize,
    /// How records are distributed.
    pub strategy: ShipStrategy,
}

/// The job as it runs: operator chains, their parallelism, and the exchanges between them.
///
/// `Display` prints a readable description; [`JobGraph::to_dot`] exports Graphviz.
///
/// ```
/// use rivulet_runtime::StreamEnv;
///
/// let env = StreamEnv::new().with_parallelism(2);
/// let _counts = env
///     .from_vec(vec!["a b".to_owned(), "b c".to_owned()])
///     .flat_map(|line| line.split(' ').map(str::to_owned).collect::<Vec<_>>())
///     .map(|word| (word, 1u64))
///     .key_by(|(word, _)| word.clone())
///     .sum(|pair| &mut pair.1)
///     .collect();
/// let graph = env.job_graph("word count").unwrap();
/// assert_eq!(graph.vertices().len(), 2);
/// assert!(graph.to_string().contains("Flat Map -> Map"));
/// ```
#[derive(Debug, Clone)]
pub struct JobGraph {
    pub(crate) name: String,
    pub(crate) max_parallelism: u16,
    pub(crate) names: Vec<String>,
    pub(crate) uids: Vec<Option<String>>,
    pub(crate) node_parallelism: Vec<usize>,
    pub(crate) node_vertex: Vec<usize>,
    /// Per stream edge: its resolved strategy and whether it lies inside a chain.
    pub(crate) edge_strategy: Vec<ShipStrategy>,
    pub(crate) edge_chained: Vec<bool>,
    pub(crate) vertices: Vec<JobVertex>,
    pub(crate) edges: Vec<JobEdge>,
}

impl JobGraph {
    /// Resolves parallelism and ship strategies and chains operators.
    pub(crate) fn build(
        name: &str,
        graph: &StreamGraph,
        default_parallelism: usize,
        max_parallelism: u16,
        chaining: bool,
    ) -> Result<JobGraph, GraphError> {
        if graph.nodes.is_empty() {
            return Err(GraphError::Empty);
        }
        let mut uids: HashMap<&str, &str> = HashMap::new();
        let mut node_parallelism = Vec::with_capacity(graph.nodes.len());
        for node in &graph.nodes {
            let cap = match &node.kind {
                NodeKind::Source(s) => s.max_parallelism(),
                _ => None,
            };
            let parallelism = match (node.parallelism, cap) {
                (Some(p), Some(cap)) if p > cap => {
                    return Err(GraphError::InvalidParallelism {
                        operator: node.name.clone(),
                        parallelism: p,
                        max_parallelism: cap,
                    });
                }
                (Some(p), _) => p,
                (None, Some(cap)) => default_parallelism.min(cap),
                (None, None) => default_parallelism,
            };
            if parallelism == 0 || parallelism > max_parallelism as usize {
                return Err(GraphError::InvalidParallelism {
                    operator: node.name.clone(),
                    parallelism,
                    max_parallelism: max_parallelism as usize,
                });
            }
            if let Some(uid) = &node.uid
                && let Some(first) = uids.insert(uid, &node.name)
            {
                return Err(GraphError::DuplicateUid {
                    uid: uid.clone(),
                    first: first.to_owned(),
                    second: node.name.clone(),
                });
            }
            node_parallelism.push(parallelism);
        }

        let edge_strategy: Vec<ShipStrategy> = graph
            .edges
            .iter()
            .map(|e| match e.strategy {
                Some(s) => s,
                None if node_parallelism[e.from] == node_parallelism[e.to] => ShipStrategy::Forward,
                None => ShipStrategy::Rebalance,
            })
            .collect();

        let n = graph.nodes.len();
        let mut outs = vec![Vec::new(); n];
        let mut ins = vec![Vec::new(); n];
        for (i, e) in graph.edges.iter().enumerate() {
            outs[e.from].push(i);
            ins[e.to].push(i);
        }
        // An edge is chained when it is the only way out of its producer and the only way into
        // its consumer, forward, between equal parallelism, into a chainable one-input operator.
        let edge_chained: Vec<bool> = graph
            .edges
            .iter()
            .enumerate()
            .map(|(i, e)| {
                chaining
                    && edge_strategy[i] == ShipStrategy::Forward
                    && outs[e.from].len() == 1
                    && ins[e.to].len() == 1
                    && node_parallelism[e.from] == node_parallelism[e.to]
                    && graph.nodes[e.to].chainable
                    && matches!(graph.nodes[e.to].kind, NodeKind::OneInput(_))
            })
            .collect();

        let mut node_vertex = vec![usize::MAX; n];
        let mut vertices = Vec::new();
        for start in 0..n {
            if ins[start].iter().any(|&e| edge_chained[e]) {
                continue;
            }
            let id = vertices.len();
            let mut operators = vec![start];
            node_vertex[start] = id;
            let mut current = start;
            while let [only] = outs[current][..] {
                if !edge_chained[only] {
                    break;
                }
                current = graph.edges[only].to;
                node_vertex[current] = id;
                operators.push(current);
            }
            vertices.push(JobVertex {
                operators,
                parallelism: node_parallelism[start],
            });
        }
        let edges = graph
            .edges
            .iter()
            .enumerate()
            .filter(|(i, _)| !edge_chained[*i])
            .map(|(i, e)| JobEdge {
                from: node_vertex[e.from],
                to: node_vertex[e.to],
                strategy: edge_strategy[i],
            })
            .collect();
        Ok(JobGraph {
            name: name.to_owned(),
            max_parallelism,
            names: graph.nodes.iter().map(|n| n.name.clone()).collect(),
            uids: graph.nodes.iter().map(|n| n.uid.clone()).collect(),
            node_parallelism,
            node_vertex,
            edge_strategy,
            edge_chained,
            vertices,
            edges,
        })
    }

    /// The job's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The tasks (operator chains), in a topological order.
    pub fn vertices(&self) -> &[JobVertex] {
        &self.vertices
    }

    /// The exchanges between tasks.
    pub fn edges(&self) -> &[JobEdge] {
        &self.edges
    }

    /// The name of operator `node`.
    pub fn operator_name(&self, node: NodeId) -> &str {
        &self.names[node]
    }

    /// The uid of operator `node`, when one was set.
    pub fn operator_uid(&self, node: NodeId) -> Option<&str> {
        self.uids[node].as_deref()
    }

    /// The number of subtasks (threads) the job runs.
    pub fn subtasks(&self) -> usize {
        self.vertices.iter().map(|v| v.parallelism).sum()
    }

    /// The chain of `vertex` as `A -> B -> C`.
    pub fn chain_name(&self, vertex: usize) -> String {
        let names: Vec<&str> = self.vertices[vertex]
            .operators
            .iter()
            .map(|&n| self.names[n].as_str())
            .collect();
        names.join(" -> ")
    }

    /// A Graphviz DOT rendering: one cluster per task, one box per operator.
    pub fn to_dot(&self) -> String {
        let mut dot = String::new();
        let _ = writeln!(dot, "digraph {:?} {{", self.name);
        let _ = writeln!(dot, "  rankdir=LR;\n  node [shape=box];");
        for (v, vertex) in self.vertices.iter().enumerate() {
            let _ = writeln!(dot, "  subgraph cluster_{v} {{");
            let _ = writeln!(
                dot,
                "    label={:?};",
                format!("task {v} (parallelism {})", vertex.parallelism)
            );
            for &n in &vertex.operators {
                let _ = writeln!(dot, "    n{n} [label={:?}];", self.names[n]);
            }
            for pair in vertex.operators.windows(2) {
                let _ = writeln!(dot, "    n{} -> n{} [label=\"CHAIN\"];", pair[0], pair[1]);
            }
            let _ = writeln!(dot, "  }}");
        }
        for e in &self.edges {
            let from = self.vertices[e.from].operators.last().copied().unwrap_or(0);
            let to = self.vertices[e.to].operators[0];
            let _ = writeln!(dot, "  n{from} -> n{to} [label=\"{}\"];", e.strategy);
        }
        dot.push_str("}\n");
        dot
    }
}

impl fmt::Display for JobGraph {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "job {:?}: {} tasks, {} subtasks, max parallelism {}",
            self.name,
            self.vertices.len(),
            self.subtasks(),
            self.max_parallelism
        )?;
        for (v, vertex) in self.vertices.iter().enumerate() {
            writeln!(
                f,
                "  task {v} [parallelism {}]: {}",
                vertex.parallelism,
                self.chain_name(v)
            )?;
            for e in self.edges.iter().filter(|e| e.to == v) {
                writeln!(f, "    <- task {} via {}", e.from, e.strategy)?;
            }
        }
        Ok(())
    }
}

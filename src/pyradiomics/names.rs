//! PyRadiomics feature names (`original_glcm_Contrast`) and their radscore / IBSI tags.
//!
//! [`MAPPINGS`] is the one table between the two naming schemes; `docs/feature-names.md`
//! is generated from it (`radscore feature-names`). A PyRadiomics feature maps onto the
//! IBSI tag *stem* (`cm_contrast`); the aggregation suffix follows how PyRadiomics
//! aggregates: per direction and averaged over directions for GLCM and GLRLM (`3D_avg`,
//! or `2_5D_avg` with `force2D`), one merged matrix for GLSZM, GLDM and NGTDM (`3D` or
//! `2_5D`).
//!
//! Reference: PyRadiomics 3.x feature classes (`radiomics/{shape,firstorder,glcm,glrlm,
//! glszm,gldm,ngtdm}.py`) and the IBSI 1 reference manual, chapter 3.

use std::collections::BTreeMap;

use crate::features::Feature;

/// PyRadiomics' prefix for features of the unfiltered image (`imageType: Original`).
pub const ORIGINAL_IMAGE_TYPE: &str = "original";

/// Feature naming of an output: offline CSV columns and job results.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Naming {
    /// radscore's IBSI tags (`cm_contrast_3D_avg`).
    #[default]
    Ibsi,
    /// PyRadiomics names (`original_glcm_Contrast`; `diagnostics_*` columns in CSV files).
    Pyradiomics,
}

impl Naming {
    /// The wire name (`ibsi`, `pyradiomics`).
    pub fn as_str(self) -> &'static str {
        match self {
            Naming::Ibsi => "ibsi",
            Naming::Pyradiomics => "pyradiomics",
        }
    }
}

/// How a radscore value becomes the PyRadiomics value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transform {
    /// Same definition.
    Same,
    /// PyRadiomics reports Pearson kurtosis, IBSI excess kurtosis (IBSI 3.3.4): `+ 3`.
    PlusNormalKurtosis,
    /// PyRadiomics' StandardDeviation is the square root of the variance.
    SquareRoot,
}

impl Transform {
    /// Apply to a radscore value.
    pub fn apply(self, value: f64) -> f64 {
        match self {
            Transform::Same => value,
            Transform::PlusNormalKurtosis => {
                value + crate::features::intensity_stats::NORMAL_KURTOSIS
            }
            Transform::SquareRoot => value.sqrt(),
        }
    }
}

/// One PyRadiomics feature and the radscore feature it is computed from.
#[derive(Debug, Clone, Copy)]
pub struct Mapping {
    /// PyRadiomics feature class, e.g. `glcm`.
    pub class: &'static str,
    /// PyRadiomics feature name, e.g. `Contrast`.
    pub feature: &'static str,
    /// radscore tag stem without aggregation, e.g. `cm_contrast`.
    pub stem: &'static str,
    /// radscore family that computes the stem.
    pub family: &'static str,
    /// Conversion of the value.
    pub transform: Transform,
    /// PyRadiomics marks the feature deprecated: computed only when listed explicitly.
    pub deprecated: bool,
}

const fn m(
    class: &'static str,
    feature: &'static str,
    stem: &'static str,
    family: &'static str,
) -> Mapping {
    Mapping {
        class,
        feature,
        stem,
        family,
        transform: Transform::Same,
        deprecated: false,
    }
}

const fn deprecated(mut mapping: Mapping) -> Mapping {
    mapping.deprecated = true;
    mapping
}

const fn with(mut mapping: Mapping, transform: Transform) -> Mapping {
    mapping.transform = transform;
    mapping
}

/// Every PyRadiomics feature radscore computes, by class, in PyRadiomics' (alphabetical)
/// order within a class.
pub const MAPPINGS: &[Mapping] = &[
    deprecated(m("shape", "Compactness1", "morph_comp_1", "morphology")),
    deprecated(m("shape", "Compactness2", "morph_comp_2", "morphology")),
    m("shape", "Elongation", "morph_pca_elongation", "morphology"),
    m("shape", "Flatness", "morph_pca_flatness", "morphology"),
    m(
        "shape",
        "LeastAxisLength",
        "morph_pca_least_axis",
        "morphology",
    ),
    m(
        "shape",
        "MajorAxisLength",
        "morph_pca_maj_axis",
        "morphology",
    ),
    m("shape", "Maximum3DDiameter", "morph_diam", "morphology"),
    m("shape", "MeshVolume", "morph_volume", "morphology"),
    m(
        "shape",
        "MinorAxisLength",
        "morph_pca_min_axis",
        "morphology",
    ),
    deprecated(m(
        "shape",
        "SphericalDisproportion",
        "morph_sph_dispr",
        "morphology",
    )),
    m("shape", "Sphericity", "morph_sphericity", "morphology"),
    m("shape", "SurfaceArea", "morph_area_mesh", "morphology"),
    m("shape", "SurfaceVolumeRatio", "morph_av", "morphology"),
    m("shape", "VoxelVolume", "morph_vol_approx", "morphology"),
    m("firstorder", "10Percentile", "stat_p10", "intensity_stats"),
    m("firstorder", "90Percentile", "stat_p90", "intensity_stats"),
    m("firstorder", "Energy", "pyr_energy", "pyradiomics_energy"),
    m("firstorder", "Entropy", "ih_entropy", "intensity_histogram"),
    m(
        "firstorder",
        "InterquartileRange",
        "stat_iqr",
        "intensity_stats",
    ),
    with(
        m("firstorder", "Kurtosis", "stat_kurt", "intensity_stats"),
        Transform::PlusNormalKurtosis,
    ),
    m("firstorder", "Maximum", "stat_max", "intensity_stats"),
    m("firstorder", "Mean", "stat_mean", "intensity_stats"),
    m(
        "firstorder",
        "MeanAbsoluteDeviation",
        "stat_mad",
        "intensity_stats",
    ),
    m("firstorder", "Median", "stat_median", "intensity_stats"),
    m("firstorder", "Minimum", "stat_min", "intensity_stats"),
    m("firstorder", "Range", "stat_range", "intensity_stats"),
    m(
        "firstorder",
        "RobustMeanAbsoluteDeviation",
        "stat_rmad",
        "intensity_stats",
    ),
    m(
        "firstorder",
        "RootMeanSquared",
        "pyr_rms",
        "pyradiomics_energy",
    ),
    m("firstorder", "Skewness", "stat_skew", "intensity_stats"),
    deprecated(with(
        m(
            "firstorder",
            "StandardDeviation",
            "stat_var",
            "intensity_stats",
        ),
        Transform::SquareRoot,
    )),
    m(
        "firstorder",
        "TotalEnergy",
        "pyr_total_energy",
        "pyradiomics_energy",
    ),
    m(
        "firstorder",
        "Uniformity",
        "ih_uniformity",
        "intensity_histogram",
    ),
    m("firstorder", "Variance", "stat_var", "intensity_stats"),
    m("glcm", "Autocorrelation", "cm_auto_corr", "glcm"),
    m("glcm", "ClusterProminence", "cm_clust_prom", "glcm"),
    m("glcm", "ClusterShade", "cm_clust_shade", "glcm"),
    m("glcm", "ClusterTendency", "cm_clust_tend", "glcm"),
    m("glcm", "Contrast", "cm_contrast", "glcm"),
    m("glcm", "Correlation", "cm_corr", "glcm"),
    m("glcm", "DifferenceAverage", "cm_diff_avg", "glcm"),
    m("glcm", "DifferenceEntropy", "cm_diff_entr", "glcm"),
    m("glcm", "DifferenceVariance", "cm_diff_var", "glcm"),
    deprecated(m("glcm", "Dissimilarity", "cm_dissimilarity", "glcm")),
    deprecated(m("glcm", "Homogeneity1", "cm_inv_diff", "glcm")),
    deprecated(m("glcm", "Homogeneity2", "cm_inv_diff_mom", "glcm")),
    m("glcm", "Id", "cm_inv_diff", "glcm"),
    m("glcm", "Idm", "cm_inv_diff_mom", "glcm"),
    m("glcm", "Idmn", "cm_inv_diff_mom_norm", "glcm"),
    m("glcm", "Idn", "cm_inv_diff_norm", "glcm"),
    m("glcm", "Imc1", "cm_info_corr1", "glcm"),
    m("glcm", "Imc2", "cm_info_corr2", "glcm"),
    m("glcm", "InverseVariance", "cm_inv_var", "glcm"),
    m("glcm", "JointAverage", "cm_joint_avg", "glcm"),
    m("glcm", "JointEnergy", "cm_energy", "glcm"),
    m("glcm", "JointEntropy", "cm_joint_entr", "glcm"),
    m("glcm", "MaximumProbability", "cm_joint_max", "glcm"),
    m("glcm", "SumAverage", "cm_sum_avg", "glcm"),
    m("glcm", "SumEntropy", "cm_sum_entr", "glcm"),
    m("glcm", "SumSquares", "cm_joint_var", "glcm"),
    deprecated(m("glcm", "SumVariance", "cm_sum_var", "glcm")),
    m("glrlm", "GrayLevelNonUniformity", "rlm_glnu", "glrlm"),
    m(
        "glrlm",
        "GrayLevelNonUniformityNormalized",
        "rlm_glnu_norm",
        "glrlm",
    ),
    m("glrlm", "GrayLevelVariance", "rlm_gl_var", "glrlm"),
    m("glrlm", "HighGrayLevelRunEmphasis", "rlm_hgre", "glrlm"),
    m("glrlm", "LongRunEmphasis", "rlm_lre", "glrlm"),
    m(
        "glrlm",
        "LongRunHighGrayLevelEmphasis",
        "rlm_lrhge",
        "glrlm",
    ),
    m("glrlm", "LongRunLowGrayLevelEmphasis", "rlm_lrlge", "glrlm"),
    m("glrlm", "LowGrayLevelRunEmphasis", "rlm_lgre", "glrlm"),
    m("glrlm", "RunEntropy", "rlm_rl_entr", "glrlm"),
    m("glrlm", "RunLengthNonUniformity", "rlm_rlnu", "glrlm"),
    m(
        "glrlm",
        "RunLengthNonUniformityNormalized",
        "rlm_rlnu_norm",
        "glrlm",
    ),
    m("glrlm", "RunPercentage", "rlm_r_perc", "glrlm"),
    m("glrlm", "RunVariance", "rlm_rl_var", "glrlm"),
    m("glrlm", "ShortRunEmphasis", "rlm_sre", "glrlm"),
    m(
        "glrlm",
        "ShortRunHighGrayLevelEmphasis",
        "rlm_srhge",
        "glrlm",
    ),
    m(
        "glrlm",
        "ShortRunLowGrayLevelEmphasis",
        "rlm_srlge",
        "glrlm",
    ),
    m("glszm", "GrayLevelNonUniformity", "szm_glnu", "glszm"),
    m(
        "glszm",
        "GrayLevelNonUniformityNormalized",
        "szm_glnu_norm",
        "glszm",
    ),
    m("glszm", "GrayLevelVariance", "szm_gl_var", "glszm"),
    m("glszm", "HighGrayLevelZoneEmphasis", "szm_hgze", "glszm"),
    m("glszm", "LargeAreaEmphasis", "szm_lze", "glszm"),
    m(
        "glszm",
        "LargeAreaHighGrayLevelEmphasis",
        "szm_lzhge",
        "glszm",
    ),
    m(
        "glszm",
        "LargeAreaLowGrayLevelEmphasis",
        "szm_lzlge",
        "glszm",
    ),
    m("glszm", "LowGrayLevelZoneEmphasis", "szm_lgze", "glszm"),
    m("glszm", "SizeZoneNonUniformity", "szm_zsnu", "glszm"),
    m(
        "glszm",
        "SizeZoneNonUniformityNormalized",
        "szm_zsnu_norm",
        "glszm",
    ),
    m("glszm", "SmallAreaEmphasis", "szm_sze", "glszm"),
    m(
        "glszm",
        "SmallAreaHighGrayLevelEmphasis",
        "szm_szhge",
        "glszm",
    ),
    m(
        "glszm",
        "SmallAreaLowGrayLevelEmphasis",
        "szm_szlge",
        "glszm",
    ),
    m("glszm", "ZoneEntropy", "szm_zs_entr", "glszm"),
    m("glszm", "ZonePercentage", "szm_z_perc", "glszm"),
    m("glszm", "ZoneVariance", "szm_zs_var", "glszm"),
    m("gldm", "DependenceEntropy", "ngl_dc_entr", "ngldm"),
    m("gldm", "DependenceNonUniformity", "ngl_dcnu", "ngldm"),
    m(
        "gldm",
        "DependenceNonUniformityNormalized",
        "ngl_dcnu_norm",
        "ngldm",
    ),
    deprecated(m("gldm", "DependencePercentage", "ngl_dc_perc", "ngldm")),
    m("gldm", "DependenceVariance", "ngl_dc_var", "ngldm"),
    m("gldm", "GrayLevelNonUniformity", "ngl_glnu", "ngldm"),
    deprecated(m(
        "gldm",
        "GrayLevelNonUniformityNormalized",
        "ngl_glnu_norm",
        "ngldm",
    )),
    m("gldm", "GrayLevelVariance", "ngl_gl_var", "ngldm"),
    m("gldm", "HighGrayLevelEmphasis", "ngl_hgce", "ngldm"),
    m("gldm", "LargeDependenceEmphasis", "ngl_hde", "ngldm"),
    m(
        "gldm",
        "LargeDependenceHighGrayLevelEmphasis",
        "ngl_hdhge",
        "ngldm",
    ),
    m(
        "gldm",
        "LargeDependenceLowGrayLevelEmphasis",
        "ngl_hdlge",
        "ngldm",
    ),
    m("gldm", "LowGrayLevelEmphasis", "ngl_lgce", "ngldm"),
    m("gldm", "SmallDependenceEmphasis", "ngl_lde", "ngldm"),
    m(
        "gldm",
        "SmallDependenceHighGrayLevelEmphasis",
        "ngl_ldhge",
        "ngldm",
    ),
    m(
        "gldm",
        "SmallDependenceLowGrayLevelEmphasis",
        "ngl_ldlge",
        "ngldm",
    ),
    m("ngtdm", "Busyness", "ngt_busyness", "ngtdm"),
    m("ngtdm", "Coarseness", "ngt_coarseness", "ngtdm"),
    m("ngtdm", "Complexity", "ngt_complexity", "ngtdm"),
    m("ngtdm", "Contrast", "ngt_contrast", "ngtdm"),
    m("ngtdm", "Strength", "ngt_strength", "ngtdm"),
];

/// PyRadiomics features radscore does not compute, with the reason.
pub const UNAVAILABLE: &[(&str, &str, &str)] = &[
    (
        "shape",
        "Maximum2DDiameterSlice",
        "per-plane diameters are not computed",
    ),
    (
        "shape",
        "Maximum2DDiameterColumn",
        "per-plane diameters are not computed",
    ),
    (
        "shape",
        "Maximum2DDiameterRow",
        "per-plane diameters are not computed",
    ),
    (
        "glcm",
        "MCC",
        "the maximal correlation coefficient (an eigenvalue problem) is not computed",
    ),
];

/// PyRadiomics feature classes radscore does not compute, with the reason.
pub const UNAVAILABLE_CLASSES: &[(&str, &str)] =
    &[("shape2D", "2D shape features are not computed")];

/// PyRadiomics feature classes in PyRadiomics' output order.
pub const CLASSES: [&str; 7] = [
    "shape",
    "firstorder",
    "glcm",
    "glrlm",
    "glszm",
    "gldm",
    "ngtdm",
];

/// The radscore tag a mapping reads, for 3D (`force_2d = false`) or PyRadiomics'
/// `force2D` (slice-wise, IBSI 2.5D).
pub fn ibsi_tag(mapping: &Mapping, force_2d: bool) -> String {
    let directional = ["cm_", "rlm_"].iter().any(|p| mapping.stem.starts_with(p));
    let merged = ["szm_", "dzm_", "ngt_", "ngl_"]
        .iter()
        .any(|p| mapping.stem.starts_with(p));
    let dims = if force_2d { "2_5D" } else { "3D" };
    if directional {
        format!("{}_{dims}_avg", mapping.stem)
    } else if merged {
        format!("{}_{dims}", mapping.stem)
    } else {
        mapping.stem.to_string()
    }
}

/// The PyRadiomics column name of a mapping for an image type, e.g.
/// `original_glcm_Contrast`.
pub fn pyradiomics_name(image_type: &str, mapping: &Mapping) -> String {
    format!("{image_type}_{}_{}", mapping.class, mapping.feature)
}

/// Which PyRadiomics features to output: per class, `None` = the class' default set (not
/// deprecated), or an explicit list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selection {
    /// Enabled classes, in PyRadiomics' class order.
    pub classes: BTreeMap<&'static str, Option<Vec<String>>>,
}

impl Selection {
    /// Every class with its default features.
    pub fn all_defaults() -> Self {
        Selection {
            classes: CLASSES.iter().map(|c| (*c, None)).collect(),
        }
    }

    /// The mappings selected, in output order (class order, then feature order).
    pub fn mappings(&self) -> Vec<&'static Mapping> {
        let mut out = Vec::new();
        for class in CLASSES {
            let Some(choice) = self.classes.get(class) else {
                continue;
            };
            out.extend(MAPPINGS.iter().filter(|m| {
                m.class == class
                    && match choice {
                        None => !m.deprecated,
                        Some(list) => list.iter().any(|f| f == m.feature),
                    }
            }));
        }
        out
    }
}

/// Rename radscore features to PyRadiomics columns. Only mappings whose radscore tag was
/// computed appear (3D tags first, else the `force2D` ones); with a `selection`, only the
/// selected features.
pub fn to_pyradiomics(
    features: &[Feature],
    image_type: &str,
    selection: Option<&Selection>,
) -> Vec<Feature> {
    let by_tag: BTreeMap<&str, f64> = features
        .iter()
        .map(|f| (f.name.as_str(), f.value))
        .collect();
    let chosen: Vec<&Mapping> = match selection {
        Some(s) => s.mappings(),
        None => MAPPINGS.iter().filter(|m| !m.deprecated).collect(),
    };
    chosen
        .into_iter()
        .filter_map(|m| {
            let value = [false, true]
                .into_iter()
                .find_map(|force_2d| by_tag.get(ibsi_tag(m, force_2d).as_str()))?;
            Some(Feature::new(
                pyradiomics_name(image_type, m),
                m.transform.apply(*value),
            ))
        })
        .collect()
}

/// Rename the features of a profile with filtered images: the original image's as
/// [`to_pyradiomics`] with `original`, then each filtered image's (names prefixed with
/// its image type, see [`crate::features::filtered_name`]) with its PyRadiomics image
/// type, e.g. `wavelet-LHH_firstorder_Mean`.
pub fn to_pyradiomics_all(
    features: &[Feature],
    profile: &crate::features::FamilySettings,
    selection: Option<&Selection>,
) -> Vec<Feature> {
    let image_types: Vec<String> = profile
        .image_filters
        .images
        .iter()
        .map(|i| i.filter.image_type())
        .collect();
    let is_filtered = |name: &str| {
        image_types.iter().any(|t| {
            name.len() > t.len() && name.starts_with(t.as_str()) && name.as_bytes()[t.len()] == b'_'
        })
    };
    let original: Vec<Feature> = features
        .iter()
        .filter(|f| !is_filtered(&f.name))
        .cloned()
        .collect();
    let mut out = to_pyradiomics(&original, ORIGINAL_IMAGE_TYPE, selection);
    for image_type in &image_types {
        let prefix = format!("{image_type}_");
        let own: Vec<Feature> = features
            .iter()
            .filter_map(|f| {
                f.name
                    .strip_prefix(&prefix)
                    .map(|tag| Feature::new(tag, f.value))
            })
            .collect();
        out.extend(to_pyradiomics(&own, image_type, selection));
    }
    out
}

/// PyRadiomics' `EnabledImageTypes` diagnostics value for a profile, e.g.
/// `{"Original": {}, "LoG": {}}` (the image types, without their settings).
pub fn enabled_image_types(profile: &crate::features::FamilySettings) -> String {
    use crate::image::filters::ImageFilter;
    let mut types: Vec<&str> = Vec::new();
    if profile.families.iter().any(|f| f != "morphology") {
        types.push("Original");
    }
    for image in &profile.image_filters.images {
        let t = match image.filter {
            ImageFilter::Log { .. } => "LoG",
            ImageFilter::Wavelet { .. } => "Wavelet",
            ImageFilter::Square => "Square",
            ImageFilter::SquareRoot => "SquareRoot",
            ImageFilter::Logarithm => "Logarithm",
            ImageFilter::Exponential => "Exponential",
            ImageFilter::Gradient { .. } => "Gradient",
        };
        if !types.contains(&t) {
            types.push(t);
        }
    }
    let map: serde_json::Map<String, serde_json::Value> = types
        .into_iter()
        .map(|t| (t.to_string(), serde_json::json!({})))
        .collect();
    serde_json::Value::Object(map).to_string()
}

/// The mapping table as markdown (the generated part of `docs/feature-names.md`).
pub fn mapping_markdown() -> String {
    let mut md = String::from(
        "| PyRadiomics column | radscore / IBSI tag (3D) | with `force2D` | conversion | \
         PyRadiomics default |\n|---|---|---|---|---|\n",
    );
    for m in MAPPINGS {
        let conversion = match m.transform {
            Transform::Same => "same definition",
            Transform::PlusNormalKurtosis => "radscore + 3 (Pearson vs excess kurtosis)",
            Transform::SquareRoot => "√ of the radscore value",
        };
        md.push_str(&format!(
            "| `{}` | `{}` | `{}` | {conversion} | {} |\n",
            pyradiomics_name(ORIGINAL_IMAGE_TYPE, m),
            ibsi_tag(m, false),
            ibsi_tag(m, true),
            if m.deprecated {
                "deprecated: only when listed"
            } else {
                "yes"
            },
        ));
    }
    md.push_str("\nNot computed by radscore (a parameter file that lists one is refused):\n\n");
    for (class, feature, why) in UNAVAILABLE {
        md.push_str(&format!("* `{class}` `{feature}`: {why}\n"));
    }
    for (class, why) in UNAVAILABLE_CLASSES {
        md.push_str(&format!("* class `{class}`: {why}\n"));
    }
    md
}

/// Marker before the generated table in `docs/feature-names.md`.
pub const TABLE_BEGIN: &str = "<!-- generated by `radscore feature-names`: begin -->";
/// Marker after the generated table.
pub const TABLE_END: &str = "<!-- generated by `radscore feature-names`: end -->";

/// `doc` with the text between [`TABLE_BEGIN`] and [`TABLE_END`] replaced by
/// [`mapping_markdown`].
///
/// # Errors
/// When the markers are missing or out of order.
pub fn replace_generated_table(doc: &str) -> anyhow::Result<String> {
    let (Some(begin), Some(end)) = (doc.find(TABLE_BEGIN), doc.find(TABLE_END)) else {
        anyhow::bail!("the document lacks the markers '{TABLE_BEGIN}' and '{TABLE_END}'");
    };
    if end < begin {
        anyhow::bail!("the end marker comes before the begin marker");
    }
    Ok(format!(
        "{}{TABLE_BEGIN}\n{}{}",
        &doc[..begin],
        mapping_markdown(),
        &doc[end..]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::{ExtractionSettings, FAMILIES};

    #[test]
    fn every_mapped_stem_is_produced_by_its_family() {
        let mut s = ExtractionSettings::bundled()
            .for_location(crate::features::Location::Other)
            .clone();
        s.families = FAMILIES.iter().map(|f| f.name.to_string()).collect();
        for aggs in [
            vec![crate::features::settings::TextureAggregation::D3Avg],
            vec![crate::features::settings::TextureAggregation::D25Avg],
        ] {
            s.texture_aggregations = aggs.clone();
            let force_2d = aggs[0] == crate::features::settings::TextureAggregation::D25Avg;
            let names = crate::features::feature_names(&s);
            for m in MAPPINGS {
                let family = FAMILIES.iter().find(|f| f.name == m.family).unwrap();
                let tag = ibsi_tag(m, force_2d);
                assert!((family.names)(&s).contains(&tag), "{tag} from {}", m.family);
                assert!(names.contains(&tag));
            }
        }
    }

    #[test]
    fn the_documented_table_is_the_generated_one() {
        let doc = include_str!("../../docs/feature-names.md");
        assert_eq!(
            replace_generated_table(doc).unwrap(),
            doc,
            "docs/feature-names.md is stale: run `radscore feature-names --update docs/feature-names.md`"
        );
    }

    #[test]
    fn renaming_applies_the_kurtosis_offset_and_selection() {
        let features = vec![
            Feature::new("stat_kurt", 0.5),
            Feature::new("cm_contrast_3D_avg", 2.0),
            Feature::new("cm_contrast_3D_comb", 9.0),
        ];
        let out = to_pyradiomics(&features, ORIGINAL_IMAGE_TYPE, None);
        assert_eq!(
            out,
            vec![
                Feature::new("original_firstorder_Kurtosis", 3.5),
                Feature::new("original_glcm_Contrast", 2.0),
            ]
        );
        let mut only_glcm = Selection::default();
        only_glcm
            .classes
            .insert("glcm", Some(vec!["Contrast".into()]));
        let out = to_pyradiomics(&features, ORIGINAL_IMAGE_TYPE, Some(&only_glcm));
        assert_eq!(out, vec![Feature::new("original_glcm_Contrast", 2.0)]);
    }
}

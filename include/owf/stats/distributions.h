// Scalar distribution helpers for the CRD codebook designs: cdf / survival / quantile (ppf) of the
// normal, Laplace and Student-t distributions with a scale parameter (location 0), and quantiles
// of their versions truncated to a symmetric or general interval.
//
// Everything is computed in double precision with Boost.Math (Student-t with real-valued degrees
// of freedom). The functions never throw: arguments outside the domain (p outside [0, 1], NaN,
// scale <= 0, df <= 0) give NaN; p = 0 / p = 1 give the lower / upper end of the support (which
// may be -inf / +inf). Callers validate their parameters and reject non-finite results.
#pragma once

namespace owf {

// Normal(0, scale^2).
double NormalCdf(double x, double scale = 1.0);
double NormalSf(double x, double scale = 1.0);  // 1 - cdf, accurate in the upper tail
double NormalPpf(double p, double scale = 1.0);
double NormalIsf(double q, double scale = 1.0);  // ppf(1 - q), accurate for small q

// Laplace(0, scale): pdf = exp(-|x| / scale) / (2 scale).
double LaplaceCdf(double x, double scale = 1.0);
double LaplaceSf(double x, double scale = 1.0);
double LaplacePpf(double p, double scale = 1.0);

// Student-t with real-valued df > 0, scaled: X = scale * T_df.
double StudentTCdf(double x, double df, double scale = 1.0);
double StudentTSf(double x, double df, double scale = 1.0);
double StudentTPpf(double p, double df, double scale = 1.0);
double StudentTIsf(double q, double df, double scale = 1.0);  // ppf(1 - q), accurate for small q

// Normal(0, scale^2) truncated to [a * scale, b * scale] (a < b in standard units), exactly
// scipy.stats.truncnorm.ppf(q, a, b, scale=scale). Uses the survival function on the upper side
// so that tails keep full relative precision.
double TruncNormalPpf(double q, double a, double b, double scale = 1.0);

// Laplace(0, scale) truncated to [-a * scale, a * scale] (a > 0 in scale units): the inverse of
// F(x) = 0.5 (e^{x/s} - e^{-a}) / (1 - e^{-a}) for x < 0 (and symmetrically for x > 0), i.e.
//   q < 1/2: s ln(2q(1 - e^-a) + e^-a),   q >= 1/2: -s ln(2 - e^-a - 2q(1 - e^-a)),
// evaluated with log1p / expm1 so that it is accurate for small a and near the ends.
double TruncLaplacePpf(double q, double a, double scale = 1.0);

// Student-t(df, scale) truncated to [lo, hi] (in data units, lo < hi): the ppf of the
// conditional distribution, cdf^-1(cdf(lo) + q (cdf(hi) - cdf(lo))), with the upper half
// computed through survival functions.
double TruncStudentTPpf(double q, double df, double lo, double hi, double scale = 1.0);

}  // namespace owf

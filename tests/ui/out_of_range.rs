fn main() {
    let _a = normflow::flow!(spline_ar(bound = 0));
}

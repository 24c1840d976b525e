// tb_requant.v -- checks fxlic_requant against $readmemh vectors
// (docs/VECTORS.md).  Element i uses the parameters of "channel" i / HW:
//   unit case (vectors/units/hdl_requant): HW = 1, C = N, a kind file;
//   a layer of a case: acc.mem of the layer, out_shift.mem and mux.mem of the
//   model, HW = H * W, C = channels, +KIND=0 (O1) / 1 (O2 leaky) / 2 (O2 none).
// Plusargs: +ACC= +SHIFT= +MUX= +EXPECT= and either +KINDS=file or +KIND=n.
// Prints "PASS n" or the first mismatches and "FAIL errors of n".
`timescale 1ns/1ps
module tb;
    parameter N = 1;
    parameter HW = 1;
    parameter C = 1;
    reg [31:0] acc_m [0:N-1];
    reg [7:0]  exp_m [0:N-1];
    reg [7:0]  shift_m [0:C-1];
    reg [7:0]  mux_m [0:C-1];
    reg [7:0]  kind_m [0:C-1];
    reg [1023:0] f_acc, f_shift, f_mux, f_kind, f_exp;
    integer i, c, errors, kconst;

    reg signed [31:0] acc;
    reg signed [7:0] shift;
    reg [1:0] mux, kind;
    wire [7:0] code;

    fxlic_requant dut (.acc(acc), .shift(shift), .mux(mux), .kind(kind), .code(code));

    initial begin
        if (!$value$plusargs("ACC=%s", f_acc) || !$value$plusargs("SHIFT=%s", f_shift) ||
            !$value$plusargs("MUX=%s", f_mux) || !$value$plusargs("EXPECT=%s", f_exp)) begin
            $display("ERROR: need +ACC= +SHIFT= +MUX= +EXPECT=");
            $finish;
        end
        $readmemh(f_acc, acc_m);
        $readmemh(f_shift, shift_m);
        $readmemh(f_mux, mux_m);
        $readmemh(f_exp, exp_m);
        if ($value$plusargs("KINDS=%s", f_kind))
            $readmemh(f_kind, kind_m);
        else begin
            if (!$value$plusargs("KIND=%d", kconst)) kconst = 0;
            for (c = 0; c < C; c = c + 1) kind_m[c] = kconst;
        end
        errors = 0;
        for (i = 0; i < N; i = i + 1) begin
            c = i / HW;
            acc = acc_m[i];
            shift = shift_m[c];
            mux = mux_m[c][1:0];
            kind = kind_m[c][1:0];
            #1;
            if (code !== exp_m[i]) begin
                errors = errors + 1;
                if (errors <= 10)
                    $display("MISMATCH element %0d (channel %0d, y*W+x %0d): acc=%0d shift=%0d mux=%0d kind=%0d expected %02h got %02h",
                             i, c, i % HW, acc, shift, mux, kind, exp_m[i], code);
            end
        end
        if (errors == 0)
            $display("PASS %0d", N);
        else
            $display("FAIL %0d of %0d", errors, N);
        $finish;
    end
endmodule

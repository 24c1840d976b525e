// tb_requant_packed.v -- checks fxlic_requant against PACKED $readmemh words
// (`fxlic vectors --mem-pack P`, docs/VECTORS.md 1 "Layouts for hardware flows").
// A packed .mem line is one word of P elements; element j of the file order is
// slot j % P of word j / P, at bits [k*W +: W] (slot 0 in the least
// significant bits); the last word's unused slots must be 0 (checked).
//   +ACC=   layers/<L>/acc.p<PA>.mem   int32 accumulators, PA per word
//   +EXPECT= layers/<L>/out.p<PO>.mem  8-bit output codes, PO per word
//   +SHIFT= +MUX=  the model's per-channel out_shift.mem / mux.mem (one per line)
//   +KIND=n  0 O1, 1 O2 leaky, 2 O2 none, or +KINDS=file (per channel)
// Parameters: N elements, C channels, HW = H * W, PA, PO, HWC (1: the case was
// written with --layout hwc, element j is channel j % C; 0: channel j / HW).
// Prints "PASS n" or the first mismatches and "FAIL errors of n".
`timescale 1ns/1ps
module tb;
    parameter N = 1;
    parameter C = 1;
    parameter HW = 1;
    parameter PA = 4;
    parameter PO = 16;
    parameter HWC = 0;
    localparam NWA = (N + PA - 1) / PA;
    localparam NWO = (N + PO - 1) / PO;
    reg [32*PA-1:0] acc_w [0:NWA-1];
    reg [8*PO-1:0]  exp_w [0:NWO-1];
    reg [7:0] shift_m [0:C-1];
    reg [7:0] mux_m [0:C-1];
    reg [7:0] kind_m [0:C-1];
    reg [1023:0] f_acc, f_shift, f_mux, f_exp, f_kind;
    integer i, c, errors, kconst;

    reg signed [31:0] acc;
    reg signed [7:0] shift;
    reg [1:0] mux, kind;
    reg [7:0] expect_code;
    wire [7:0] code;

    fxlic_requant dut (.acc(acc), .shift(shift), .mux(mux), .kind(kind), .code(code));

    initial begin
        if (!$value$plusargs("ACC=%s", f_acc) || !$value$plusargs("SHIFT=%s", f_shift) ||
            !$value$plusargs("MUX=%s", f_mux) || !$value$plusargs("EXPECT=%s", f_exp)) begin
            $display("ERROR: need +ACC= +SHIFT= +MUX= +EXPECT=");
            $finish;
        end
        if ($value$plusargs("KINDS=%s", f_kind))
            $readmemh(f_kind, kind_m);
        else begin
            if (!$value$plusargs("KIND=%d", kconst)) kconst = 0;
            for (c = 0; c < C; c = c + 1) kind_m[c] = kconst;
        end
        $readmemh(f_acc, acc_w);
        $readmemh(f_exp, exp_w);
        $readmemh(f_shift, shift_m);
        $readmemh(f_mux, mux_m);
        errors = 0;
        for (i = 0; i < N; i = i + 1) begin
            c = HWC ? i % C : i / HW;
            acc = acc_w[i / PA][(i % PA) * 32 +: 32];
            expect_code = exp_w[i / PO][(i % PO) * 8 +: 8];
            shift = shift_m[c];
            mux = mux_m[c][1:0];
            kind = kind_m[c][1:0];
            #1;
            if (code !== expect_code) begin
                errors = errors + 1;
                if (errors <= 10)
                    $display("MISMATCH element %0d (channel %0d, word %0d slot %0d): acc=%0d shift=%0d mux=%0d kind=%0d expected %02h got %02h",
                             i, c, i / PO, i % PO, acc, shift, mux, kind, expect_code, code);
            end
        end
        // the pad slots of the last words are zero
        for (i = N; i < NWA * PA; i = i + 1)
            if (acc_w[i / PA][(i % PA) * 32 +: 32] !== 32'd0) begin
                errors = errors + 1;
                $display("MISMATCH pad slot %0d of the last acc word is not 0", i % PA);
            end
        for (i = N; i < NWO * PO; i = i + 1)
            if (exp_w[i / PO][(i % PO) * 8 +: 8] !== 8'd0) begin
                errors = errors + 1;
                $display("MISMATCH pad slot %0d of the last code word is not 0", i % PO);
            end
        if (errors == 0)
            $display("PASS %0d", N);
        else
            $display("FAIL %0d of %0d", errors, N);
        $finish;
    end
endmodule

// Behavioural model of the Lattice ECP5 DP16KD block RAM, as far as RegisteredRam uses it
// (hw/core/bram.py): both ports the same data width (1, 2, 4, 9, 18, or 36 = pseudo dual
// port with the word split over both ports' data pins), one clock, no chip selects, no
// resets, NORMAL write mode. Written from Lattice TN1264 (ECP5 Memory Usage Guide) and the
// port wiring in Yosys's share/lattice/brams_map_16kd.v; Yosys ships the primitive only as a
// black box. Anything outside that subset stops the simulation, so a wrapper change that
// leaves it is caught rather than silently modelled.
`timescale 1ns/1ps
module DP16KD #(
    parameter integer DATA_WIDTH_A = 18, parameter integer DATA_WIDTH_B = 18,
    parameter REGMODE_A = "NOREG", parameter REGMODE_B = "NOREG",
    parameter RESETMODE = "SYNC", parameter ASYNC_RESET_RELEASE = "SYNC",
    parameter CSDECODE_A = "0b000", parameter CSDECODE_B = "0b000",
    parameter WRITEMODE_A = "NORMAL", parameter WRITEMODE_B = "NORMAL",
    parameter GSR = "DISABLED"
) (
    input DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8, DIA7, DIA6, DIA5,
    input DIA4, DIA3, DIA2, DIA1, DIA0,
    input ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3, ADA2, ADA1, ADA0,
    input CEA, OCEA, CLKA, WEA, RSTA, CSA2, CSA1, CSA0,
    output DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6,
    output DOA5, DOA4, DOA3, DOA2, DOA1, DOA0,
    input DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8, DIB7, DIB6, DIB5,
    input DIB4, DIB3, DIB2, DIB1, DIB0,
    input ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3, ADB2, ADB1, ADB0,
    input CEB, OCEB, CLKB, WEB, RSTB, CSB2, CSB1, CSB0,
    output DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6,
    output DOB5, DOB4, DOB3, DOB2, DOB1, DOB0
);
    localparam integer W = DATA_WIDTH_A;
    localparam integer LSB = W == 36 ? 5 : W == 18 ? 4 : W == 9 ? 3 : W == 4 ? 2 : W == 2 ? 1 : 0;
    localparam integer DEPTH = 16384 >> LSB;
    localparam integer PDP = W == 36;

    wire [17:0] dia = {DIA17, DIA16, DIA15, DIA14, DIA13, DIA12, DIA11, DIA10, DIA9, DIA8,
                       DIA7, DIA6, DIA5, DIA4, DIA3, DIA2, DIA1, DIA0};
    wire [17:0] dib = {DIB17, DIB16, DIB15, DIB14, DIB13, DIB12, DIB11, DIB10, DIB9, DIB8,
                       DIB7, DIB6, DIB5, DIB4, DIB3, DIB2, DIB1, DIB0};
    wire [13:0] ada = {ADA13, ADA12, ADA11, ADA10, ADA9, ADA8, ADA7, ADA6, ADA5, ADA4, ADA3,
                       ADA2, ADA1, ADA0};
    wire [13:0] adb = {ADB13, ADB12, ADB11, ADB10, ADB9, ADB8, ADB7, ADB6, ADB5, ADB4, ADB3,
                       ADB2, ADB1, ADB0};

    reg [35:0] mem [0:DEPTH-1];
    reg [35:0] latch_a, latch_b, oreg_a, oreg_b;
    integer i;
    initial begin
        for (i = 0; i < DEPTH; i = i + 1) mem[i] = 36'd0;
        latch_a = 0; latch_b = 0; oreg_a = 0; oreg_b = 0;
        if (DATA_WIDTH_A != DATA_WIDTH_B || LSB == 0 && W != 1
                || {CSDECODE_A, CSDECODE_B} != {"0b000", "0b000"}
                || WRITEMODE_A != "NORMAL" || WRITEMODE_B != "NORMAL"
                || (PDP && REGMODE_A != REGMODE_B)) begin
            $display("DP16KD model: unsupported parameters (widths %0d / %0d)", DATA_WIDTH_A,
                     DATA_WIDTH_B);
            $fatal(1);
        end
    end

    // byte (9-bit) write enables sit on the low address bits of the write port in 18 / 36
    function [35:0] wmask(input [13:0] ad);
        integer b;
        begin
            wmask = 0;
            if (W == 36) for (b = 0; b < 4; b = b + 1) wmask[9*b +: 9] = {9{ad[b]}};
            else if (W == 18) for (b = 0; b < 2; b = b + 1) wmask[9*b +: 9] = {9{ad[b]}};
            else wmask = (36'd1 << W) - 1;
        end
    endfunction

    always @(posedge CLKA) begin
        if ({CSA2, CSA1, CSA0} != 3'b000 || RSTA || (PDP && WEB)) begin
            $display("DP16KD model: unsupported use of port A / WEB"); $fatal(1);
        end
        if (CEA && WEA) begin
            mem[ada[13:LSB]] <= (mem[ada[13:LSB]] & ~wmask(ada))
                                | ((PDP ? {dib, dia} : {18'd0, dia}) & wmask(ada));
        end else if (CEA && !PDP) begin
            latch_a <= mem[ada[13:LSB]];
        end
        if (OCEA) oreg_a <= latch_b;     // (only PDP reads through port A's pins)
    end
    always @(posedge CLKB) begin
        if ({CSB2, CSB1, CSB0} != 3'b000 || RSTB || (!PDP && WEB)) begin
            $display("DP16KD model: unsupported use of port B"); $fatal(1);
        end
        if (CEB) latch_b <= mem[adb[13:LSB]];
        if (OCEB) oreg_b <= latch_b;
    end
    // PDP: the low 18 bits of the read word on DOA (port A's output register and enable),
    // the high 18 on DOB; otherwise port B reads on DOB
    wire [35:0] rd_b = REGMODE_B == "OUTREG" ? oreg_b : latch_b;
    wire [35:0] rd_a = REGMODE_A == "OUTREG" ? oreg_a : latch_b;
    wire [17:0] doa = PDP ? rd_a[17:0] : latch_a[17:0];
    wire [17:0] dob = PDP ? rd_b[35:18] : rd_b[17:0];
    assign {DOA17, DOA16, DOA15, DOA14, DOA13, DOA12, DOA11, DOA10, DOA9, DOA8, DOA7, DOA6,
            DOA5, DOA4, DOA3, DOA2, DOA1, DOA0} = doa;
    assign {DOB17, DOB16, DOB15, DOB14, DOB13, DOB12, DOB11, DOB10, DOB9, DOB8, DOB7, DOB6,
            DOB5, DOB4, DOB3, DOB2, DOB1, DOB0} = dob;
endmodule
